package tailor.flink;

import java.io.IOException;
import java.nio.charset.StandardCharsets;

import org.apache.flink.connector.kafka.sink.KafkaRecordSerializationSchema;
import org.apache.flink.kafka.shaded.org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.core.JsonFactory;
import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.core.JsonParser;
import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.core.JsonToken;
import org.apache.flink.types.Row;

/**
 * (key, event JSON) rows as events-topic records: the key as UTF-8 bytes, the JSON as written, and the
 * record timestamp read from the event's top-level epoch-ms {@code "timestamp"} field. The job's watermarks
 * come from record timestamps, so an event it writes back into its own input (identity merges, forwarded
 * events) must carry its event time, not the time it was written: a historical replay would otherwise see
 * a partition's watermark jump to now.
 */
public class KeyedEventSerializer implements KafkaRecordSerializationSchema<Row> {
    private static final long serialVersionUID = 1L;
    private static final JsonFactory JSON = new JsonFactory();

    private final String topic;

    public KeyedEventSerializer(String topic) {
        this.topic = topic;
    }

    @Override
    public ProducerRecord<byte[], byte[]> serialize(Row row, KafkaSinkContext context, Long timestamp) {
        String key = (String) row.getField(0);
        String value = (String) row.getField(1);
        return new ProducerRecord<>(
                topic, null, eventTime(value), key == null ? null : key.getBytes(StandardCharsets.UTF_8),
                value.getBytes(StandardCharsets.UTF_8));
    }

    /** The top-level "timestamp" if it is an integer, else null (the producer's clock). */
    static Long eventTime(String json) {
        try (JsonParser p = JSON.createParser(json)) {
            if (p.nextToken() != JsonToken.START_OBJECT) {
                return null;
            }
            while (p.nextToken() == JsonToken.FIELD_NAME) {
                String field = p.currentName();
                JsonToken value = p.nextToken();
                if ("timestamp".equals(field)) {
                    return value == JsonToken.VALUE_NUMBER_INT ? p.getLongValue() : null;
                }
                p.skipChildren();
            }
        } catch (IOException e) {
            return null;
        }
        return null;
    }
}
