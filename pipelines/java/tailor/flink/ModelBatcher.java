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
 * hub's {@code MODEL_BATCH} records; rows of other kinds are dropped (it is the filter too). A row's kind may
 * name the bucket it comes from, {@code <inputKind>@<bucket>} ({@link KeyedByBucket}).
 *
 * <p>A batch leaves when it holds {@code maxChars} characters of JSON, and when {@link FlushingBatcher}
 * says ({@code maxDelayMs} after its first row, before every watermark, checkpoint barrier and the end
 * of input).
 */
public class ModelBatcher extends FlushingBatcher {
    private static final long serialVersionUID = 1L;

    private final String inputKind;
    private final String inputKindOfBucket;
    private final String outputKind;
    private final int maxChars;
    private transient StringBuilder batch;
    private transient int buffered;

    public ModelBatcher(String inputKind, String outputKind, int maxChars, long maxDelayMs) {
        super(maxDelayMs);
        this.inputKind = inputKind;
        this.inputKindOfBucket = inputKind + "@";
        this.outputKind = outputKind;
        this.maxChars = maxChars;
    }

    @Override
    public void open() throws Exception {
        super.open();
        batch = new StringBuilder(8192).append('[');
    }

    @Override
    public void processElement(StreamRecord<Row> element) throws Exception {
        Row row = element.getValue();
        String kind = (String) row.getField(0);
        if (kind == null || !(kind.equals(inputKind) || kind.startsWith(inputKindOfBucket))) {
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
        output.collect(new StreamRecord<>(Row.of(outputKind, batch.append(']').toString())));
        batch.setLength(0);
        batch.append('[');
        buffered = 0;
    }

    private static String preview(String value) {
        return value.length() <= 80 ? value : value.substring(0, 80) + "...";
    }
}
