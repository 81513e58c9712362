package tailor.flink;

import org.apache.flink.api.common.operators.ProcessingTimeService.ProcessingTimeCallback;
import org.apache.flink.streaming.api.operators.AbstractStreamOperator;
import org.apache.flink.streaming.api.operators.BoundedOneInput;
import org.apache.flink.streaming.api.operators.OneInputStreamOperator;
import org.apache.flink.streaming.api.watermark.Watermark;
import org.apache.flink.types.Row;

/**
 * When a stateless batching operator lets its batch go: {@code maxDelayMs} of processing time after the
 * first buffered row, when the subclass says it is full, and -- what keeps event time and checkpoints
 * exact downstream -- before every watermark, before every checkpoint barrier and at the end of the
 * input. So no watermark overtakes a record it covers, a checkpoint never holds records in flight here
 * (the operator has no state), and a bounded input loses nothing.
 *
 * <p>Subclasses buffer in {@code processElement}, call {@link #rowBuffered(boolean)} after each row, and emit
 * in {@link #flush()}.
 */
public abstract class FlushingBatcher extends AbstractStreamOperator<Row>
        implements OneInputStreamOperator<Row, Row>, BoundedOneInput, ProcessingTimeCallback {
    private static final long serialVersionUID = 1L;

    private final long maxDelayMs;
    private transient boolean timerArmed;

    protected FlushingBatcher(long maxDelayMs) {
        this.maxDelayMs = maxDelayMs;
    }

    /** A row was buffered: flush now if {@code full}, else at the latest {@code maxDelayMs} from the first. */
    protected final void rowBuffered(boolean full) {
        if (full) {
            flush();
        } else if (!timerArmed) {
            timerArmed = true;
            long now = getProcessingTimeService().getCurrentProcessingTime();
            getProcessingTimeService().registerTimer(now + maxDelayMs, this);
        }
    }

    /** Emit what is buffered, if anything, and start empty. */
    protected abstract void flush();

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
}
