package tailor.flink;

import java.nio.ByteBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.util.Base64;

import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.connector.kafka.source.reader.deserializer.KafkaRecordDeserializationSchema;
import org.apache.flink.kafka.shaded.org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.core.JsonFactory;
import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.core.JsonParser;
import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.core.JsonToken;
import org.apache.flink.types.Row;
import org.apache.flink.util.Collector;

/**
 * One Kafka record of the events topic as a row the batcher groups: (bucket, partition, offset, timestamp,
 * value, value_b64). Nothing is dropped: a tombstone (null value) comes through with a null value, a value
 * that is not UTF-8 with its exact bytes in base64 beside a lossy text.
 *
 * <p>The bucket is the user's: a hash of the payload's {@code userId}, else {@code anonymousId} (what the
 * job keys state by), else of the record key; so every event of a user lands in one bucket whatever key or
 * partition its producer chose. Only the top level of the JSON object is scanned.
 *
 * <p>A record of the reserved user {@code tailor:broadcast} (a rules update, {@code tailor rules apply}) is
 * copied to every bucket: each bucket's segmenter must meet it in its own stream.
 */
public class EventRecordDeserializer implements KafkaRecordDeserializationSchema<Row> {
    private static final long serialVersionUID = 1L;
    private static final JsonFactory JSON = new JsonFactory();
    /** operators/rules_updates.py BROADCAST_USER. */
    static final String BROADCAST_USER = "tailor:broadcast";

    private final int buckets;

    public EventRecordDeserializer(int buckets) {
        this.buckets = buckets;
    }

    @Override
    public void deserialize(ConsumerRecord<byte[], byte[]> record, Collector<Row> out) {
        byte[] value = record.value();
        String text = null;
        String b64 = null;
        if (value != null) {
            try {
                text = StandardCharsets.UTF_8.newDecoder()
                        .onMalformedInput(CodingErrorAction.REPORT)
                        .onUnmappableCharacter(CodingErrorAction.REPORT)
                        .decode(ByteBuffer.wrap(value)).toString();
            } catch (CharacterCodingException e) {
                text = new String(value, StandardCharsets.UTF_8);
                b64 = Base64.getEncoder().encodeToString(value);
            }
        }
        String user = text == null ? null : userOf(text);
        if (user == null && record.key() != null) {
            user = new String(record.key(), StandardCharsets.UTF_8);
        }
        if (BROADCAST_USER.equals(user)) {
            for (int bucket = 0; bucket < buckets; bucket++) {
                out.collect(Row.of(bucket, record.partition(), record.offset(), record.timestamp(), text, b64));
            }
            return;
        }
        int bucket = user == null ? 0 : Math.floorMod(user.hashCode(), buckets);
        out.collect(Row.of(bucket, record.partition(), record.offset(), record.timestamp(), text, b64));
    }

    /** userId, else anonymousId, of a JSON object (numbers as written); null if neither or not JSON. */
    static String userOf(String json) {
        String anonymous = null;
        try (JsonParser p = JSON.createParser(json)) {
            if (p.nextToken() != JsonToken.START_OBJECT) {
                return null;
            }
            JsonToken token;
            while ((token = p.nextToken()) == JsonToken.FIELD_NAME) {
                String field = p.currentName();
                JsonToken v = p.nextToken();
                boolean scalar = v == JsonToken.VALUE_STRING || v == JsonToken.VALUE_NUMBER_INT;
                if (scalar && "userId".equals(field) && !p.getText().isEmpty()) {
                    return p.getText();
                } else if (scalar && "anonymousId".equals(field) && !p.getText().isEmpty()) {
                    anonymous = p.getText();
                } else {
                    p.skipChildren();
                }
            }
        } catch (Exception e) {
            // Not JSON (or too deep): normalize will dead-letter it; any bucket will do.
        }
        return anonymous;
    }

    @Override
    public TypeInformation<Row> getProducedType() {
        return Types.ROW_NAMED(
                new String[] {"bucket", "partition", "offset", "timestamp", "value", "value_b64"},
                Types.INT, Types.INT, Types.LONG, Types.LONG, Types.STRING, Types.STRING);
    }
}
