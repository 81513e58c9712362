package tailor.flink;

import org.apache.flink.api.common.functions.FlatMapFunction;
import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.api.java.typeutils.ResultTypeQueryable;
import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.core.JsonFactory;
import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.core.JsonParser;
import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.core.JsonToken;
import org.apache.flink.types.Row;
import org.apache.flink.util.Collector;

/**
 * The Python operator's outputs of one kind, one record each. It emits a row (kind, payload) per batch and
 * kind, payload a JSON array of {@code [key, record]} pairs whose record is a JSON object (embedded as
 * written) or a string; this yields (key, record) per pair, the object's text exactly as Python wrote it.
 * Named fields, for the SQL Kafka sinks.
 */
public class Unbatch implements FlatMapFunction<Row, Row>, ResultTypeQueryable<Row> {
    private static final long serialVersionUID = 1L;
    private static final JsonFactory JSON = new JsonFactory();

    private final String kind;
    private final String keyField;
    private final String valueField;

    public Unbatch(String kind, String keyField, String valueField) {
        this.kind = kind;
        this.keyField = keyField;
        this.valueField = valueField;
    }

    @Override
    public void flatMap(Row batch, Collector<Row> out) throws Exception {
        if (!kind.equals(batch.getField(0))) {
            return;
        }
        String payload = (String) batch.getField(1);
        try (JsonParser p = JSON.createParser(payload)) {
            expect(p.nextToken(), JsonToken.START_ARRAY);
            while (p.nextToken() == JsonToken.START_ARRAY) {
                JsonToken keyToken = p.nextToken();
                String key = keyToken == JsonToken.VALUE_NULL ? null : p.getText();
                JsonToken record = p.nextToken();
                String value;
                if (record == JsonToken.VALUE_STRING) {
                    value = p.getText();
                } else {
                    int start = (int) p.currentTokenLocation().getCharOffset();
                    p.skipChildren();
                    value = payload.substring(start, (int) p.currentLocation().getCharOffset());
                }
                expect(p.nextToken(), JsonToken.END_ARRAY);
                out.collect(Row.of(key, value));
            }
        }
    }

    private static void expect(JsonToken got, JsonToken wanted) {
        if (got != wanted) {
            throw new IllegalStateException("batched output: expected " + wanted + ", got " + got);
        }
    }

    @Override
    public TypeInformation<Row> getProducedType() {
        return Types.ROW_NAMED(new String[] {keyField, valueField}, Types.STRING, Types.STRING);
    }
}
