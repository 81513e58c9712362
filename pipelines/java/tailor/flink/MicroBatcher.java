package tailor.flink;

import java.util.HashMap;
import java.util.Map;

import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.core.io.JsonStringEncoder;
import org.apache.flink.streaming.runtime.streamrecord.StreamRecord;
import org.apache.flink.types.Row;

/**
 * Groups event rows (from {@link EventRecordDeserializer}) into one batch per bucket, so that the Python
 * operator is called once per batch instead of once per event.
 *
 * <p>A batch is the row (bucket, count, records) where records is a JSON array of
 * {@code [timestamp, partition, offset, value, value_b64]}, in arrival order. It leaves wrapped as
 * (bucket, batch): the form PyFlink's keyed Python operators take after {@code KeyByKeySelector}, so no
 * Python key selector runs. Batches leave when {@code maxRecords} are buffered, and when
 * {@link FlushingBatcher} says (every {@code maxDelayMs}, before every watermark, checkpoint barrier and
 * the end of input).
 */
public class MicroBatcher extends FlushingBatcher {
    private static final long serialVersionUID = 1L;

    private final int maxRecords;
    private transient Map<Integer, StringBuilder> batches;
    private transient Map<Integer, Integer> counts;
    private transient int buffered;

    public MicroBatcher(int maxRecords, long maxDelayMs) {
        super(maxDelayMs);
        this.maxRecords = maxRecords;
    }

    @Override
    public void open() throws Exception {
        super.open();
        batches = new HashMap<>();
        counts = new HashMap<>();
    }

    @Override
    public void processElement(StreamRecord<Row> element) throws Exception {
        Row row = element.getValue();
        int bucket = (Integer) row.getField(0);
        StringBuilder batch = batches.computeIfAbsent(bucket, b -> new StringBuilder(4096).append('['));
        if (batch.length() > 1) {
            batch.append(',');
        }
        batch.append('[').append((long) (Long) row.getField(3)).append(',').append((int) (Integer) row.getField(1))
                .append(',').append((long) (Long) row.getField(2)).append(',');
        appendString(batch, (String) row.getField(4));
        batch.append(',');
        appendString(batch, (String) row.getField(5));
        batch.append(']');
        counts.merge(bucket, 1, Integer::sum);
        rowBuffered(++buffered >= maxRecords);
    }

    @Override
    protected void flush() {
        if (buffered == 0) {
            return;
        }
        for (Map.Entry<Integer, StringBuilder> entry : batches.entrySet()) {
            String records = entry.getValue().append(']').toString();
            Row batch = Row.of(entry.getKey(), counts.get(entry.getKey()), records);
            output.collect(new StreamRecord<>(Row.of(entry.getKey(), batch)));
        }
        batches.clear();
        counts.clear();
        buffered = 0;
    }

    private static void appendString(StringBuilder out, String value) {
        if (value == null) {
            out.append("null");
        } else {
            out.append('"');
            JsonStringEncoder.getInstance().quoteAsString(value, out);
            out.append('"');
        }
    }
}
