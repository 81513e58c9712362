package tailor.flink;

import org.apache.flink.api.common.functions.FlatMapFunction;
import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.api.java.typeutils.ResultTypeQueryable;
import org.apache.flink.types.Row;
import org.apache.flink.util.Collector;

/**
 * The rule operator's rows of one kind, ready for a key-by-bucket shuffle without a Python key selector.
 *
 * <p>The rule operator names the bucket a row comes from in its kind, {@code <kind>@<bucket>}; this emits
 * {@code (bucket, (kind, payload))} for each such row (other kinds are dropped), so that {@code KeyByKeySelector}
 * can key the stream by field 0, as the events are keyed before the rule operator.
 */
public class KeyedByBucket implements FlatMapFunction<Row, Row>, ResultTypeQueryable<Row> {
    private static final long serialVersionUID = 1L;

    private final String kind;
    private final String prefix;

    public KeyedByBucket(String kind) {
        this.kind = kind;
        this.prefix = kind + "@";
    }

    @Override
    public void flatMap(Row row, Collector<Row> out) {
        String rowKind = (String) row.getField(0);
        if (rowKind == null || !rowKind.startsWith(prefix)) {
            return;
        }
        int bucket = Integer.parseInt(rowKind.substring(prefix.length()));
        out.collect(Row.of(bucket, Row.of(kind, row.getField(1))));
    }

    @Override
    public TypeInformation<Row> getProducedType() {
        return Types.ROW(Types.INT, Types.ROW_NAMED(new String[] {"kind", "payload"}, Types.STRING, Types.STRING));
    }
}
