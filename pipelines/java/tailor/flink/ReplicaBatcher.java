package tailor.flink;

import org.apache.flink.types.Row;

/**
 * The model inputs for the sharded recommender: one batch per group of buckets, keyed for its replica.
 *
 * <p>A replica called once per bucket batch paid its per-call cost per event under a paced stream (10 ms
 * windows over 32 buckets hold one event or two). So, as {@link ModelBatcher} does for the hub, this
 * gathers {@code maxDelayMs} of rule batches, but in one batch per group ({@code bucket % keys.length}),
 * and emits {@code (keys[group], (outputKind, array))} rows for a key-by on field 0. The keys are fixed
 * integers chosen so that Flink's key groups spread them evenly over 1, 2, 4 or 8 subtasks; a user's group,
 * and so the keyed state holding them, never changes.
 */
public class ReplicaBatcher extends ModelBatcher {
    private static final long serialVersionUID = 1L;

    private final int[] keys;

    public ReplicaBatcher(String inputKind, String outputKind, int[] keys, int maxChars, long maxDelayMs) {
        super(inputKind, outputKind, keys.length, maxChars, maxDelayMs);
        this.keys = keys.clone();
    }

    @Override
    protected Row emitted(int group, String array) {
        return Row.of(keys[group], Row.of(outputKind, array));
    }
}
