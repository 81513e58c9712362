package tailor.flink;

import org.apache.flink.api.common.operators.ProcessingTimeService.ProcessingTimeCallback;
import org.apache.flink.streaming.api.operators.AbstractStreamOperator;
import org.apache.flink.streaming.api.operators.BoundedOneInput;
import org.apache.flink.streaming.api.operators.OneInputStreamOperator;
import org.apache.flink.streaming.api.watermark.Watermark;
import org.apache.flink.streaming.runtime.streamrecord.StreamRecord;
import org.apache.flink.types.Row;

/**
 * Gathers the model inputs of many rule-operator batches into one batch for the model hub.
 *
 * <p>The rule operator emits one {@code (kind, records)} row per kind per bucket batch; at moderate load a
 * bucket batch holds one or two events, so the hub was called, and wrote its state, once per event or
 * two. This takes the rows of kind {@code inputKind} (a JSON array of {@code ["event", <model input>]}
 * pairs), concatenates their arrays in arrival order and emits {@code (outputKind, array)} rows, the
 * hub's {@code MODEL_BATCH} records; rows of other kinds are dropped (it is the filter too).
 *
 * <p>A batch leaves when it holds {@code maxChars} characters of JSON, {@code maxDelayMs} of processing time after
 * its first row, and before every watermark, every checkpoint barrier and the end of input: a checkpoint
 * never holds inputs in flight here (the operator has no state) and a bounded input loses nothing.
 */
public class ModelBatcher extends AbstractStreamOperator<Row>
        implements OneInputStreamOperator<Row, Row>, BoundedOneInput, ProcessingTimeCallback {
    private static final long serialVersionUID = 1L;

    private final String inputKind;
    private final String outputKind;
    private final int maxChars;
    private final long maxDelayMs;
    private transient StringBuilder batch;
    private transient int buffered;
    private transient boolean timerArmed;

    public ModelBatcher(String inputKind, String outputKind, int maxChars, long maxDelayMs) {
        this.inputKind = inputKind;
        this.outputKind = outputKind;
        this.maxChars = maxChars;
        this.maxDelayMs = maxDelayMs;
    }

    @Override
    public void open() throws Exception {
        super.open();
        batch = new StringBuilder(8192).append('[');
    }

    @Override
    public void processElement(StreamRecord<Row> element) throws Exception {
        Row row = element.getValue();
        if (!inputKind.equals(row.getField(0))) {
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
        if (batch.length() >= maxChars) {
            flush();
        } else if (!timerArmed) {
            timerArmed = true;
            long now = getProcessingTimeService().getCurrentProcessingTime();
            getProcessingTimeService().registerTimer(now + maxDelayMs, this);
        }
    }

    @Override
    public void onProcessingTime(long time) {
        timerArmed = false;
        flush();
    }

    @Override
    public void processWatermark(Watermark mark) throws Exception {
        flush();
        super.processWatermark(mark);
    }

    @Override
    public void prepareSnapshotPreBarrier(long checkpointId) throws Exception {
        flush();
        super.prepareSnapshotPreBarrier(checkpointId);
    }

    @Override
    public void endInput() {
        flush();
    }

    private void flush() {
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
