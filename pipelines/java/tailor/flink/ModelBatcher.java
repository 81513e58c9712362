package tailor.flink;

import org.apache.flink.streaming.runtime.streamrecord.StreamRecord;
import org.apache.flink.types.Row;

/**
 * Gathers the model inputs of many rule-operator batches into one batch for the model hub.
 *
 * <p>The rule operator emits one {@code (kind, records)} row per kind per bucket batch; at moderate load a
 * bucket batch holds one or two events, so the hub was called, and wrote its state, once per event or
 * two. This takes the rows of kind {@code inputKind} (a JSON array of {@code ["event", <model input>]}
 * pairs), concatenates their arrays in arrival order and emits {@code (outputKind, array)} rows, the
 * hub's {@code MODEL_BATCH} records; rows of other kinds are dropped (it is the filter too). A row's kind
 * names the bucket it comes from, {@code <inputKind>@<bucket>} (a plain {@code inputKind} counts as bucket
 * 0); a subclass may keep one batch per group of buckets ({@link ReplicaBatcher}).
 *
 * <p>A batch leaves when it holds {@code maxChars} characters of JSON, and when {@link FlushingBatcher}
 * says ({@code maxDelayMs} after its first row, before every watermark, checkpoint barrier and the end
 * of input).
 */
public class ModelBatcher extends FlushingBatcher {
    private static final long serialVersionUID = 1L;

    private final String inputKind;
    private final String inputKindOfBucket;
    protected final String outputKind;
    private final int groups;
    private final int maxChars;
    private transient StringBuilder[] batches;
    private transient int buffered;

    public ModelBatcher(String inputKind, String outputKind, int maxChars, long maxDelayMs) {
        this(inputKind, outputKind, 1, maxChars, maxDelayMs);
    }

    protected ModelBatcher(String inputKind, String outputKind, int groups, int maxChars, long maxDelayMs) {
        super(maxDelayMs);
        this.inputKind = inputKind;
        this.inputKindOfBucket = inputKind + "@";
        this.outputKind = outputKind;
        this.groups = groups;
        this.maxChars = maxChars;
    }

    @Override
    public void open() throws Exception {
        super.open();
        batches = new StringBuilder[groups];
        for (int g = 0; g < groups; g++) {
            batches[g] = new StringBuilder(8192).append('[');
        }
    }

    @Override
    public void processElement(StreamRecord<Row> element) throws Exception {
        Row row = element.getValue();
        String kind = (String) row.getField(0);
        int bucket;
        if (inputKind.equals(kind)) {
            bucket = 0;
        } else if (kind != null && kind.startsWith(inputKindOfBucket)) {
            bucket = Integer.parseInt(kind.substring(inputKindOfBucket.length()));
        } else {
            return;
        }
        String records = (String) row.getField(1);
        int end = records.lastIndexOf(']');
        if (records.isEmpty() || records.charAt(0) != '[' || end < 0) {
            throw new IllegalStateException("model inputs: expected a JSON array, got " + preview(records));
        }
        String inner = records.substring(1, end).trim();
        if (inner.isEmpty()) {
            return;
        }
        StringBuilder batch = batches[bucket % groups];
        if (batch.length() > 1) {
            batch.append(',');
        }
        batch.append(inner);
        buffered++;
        rowBuffered(batch.length() >= maxChars);
    }

    @Override
    protected void flush() {
        if (buffered == 0) {
            return;
        }
        for (int g = 0; g < groups; g++) {
            StringBuilder batch = batches[g];
            if (batch.length() > 1) {
                output.collect(new StreamRecord<>(emitted(g, batch.append(']').toString())));
                batch.setLength(0);
                batch.append('[');
            }
        }
        buffered = 0;
    }

    /** The row a group's batch leaves as. */
    protected Row emitted(int group, String array) {
        return Row.of(outputKind, array);
    }

    private static String preview(String value) {
        return value.length() <= 80 ? value : value.substring(0, 80) + "...";
    }
}
