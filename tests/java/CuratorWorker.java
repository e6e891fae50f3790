import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;

import org.apache.curator.framework.CuratorFramework;
import org.apache.curator.framework.CuratorFrameworkFactory;
import org.apache.curator.retry.ExponentialBackoffRetry;
import org.apache.zookeeper.data.Stat;

/**
 * What the interop tests' lock workers share (compiled with each of them by
 * {@code tests/common/java.rs}): their output, their Curator clients, their slots and their
 * command loop.
 *
 * <p>A worker reads one command per line on stdin and answers on stdout. It prints
 * {@code READY} once its admin client is connected, {@code ERROR - <message>} for a command
 * that failed or that it does not know, and {@code BYE} after {@code QUIT} (or the end of its
 * input). A <em>slot</em> is one participant driven by commands, one at a time, on a thread of
 * its own.
 */
abstract class CuratorWorker {
    private static final Object OUT = new Object();

    /** Prints one whole line at once, whichever thread says it. */
    static void say(String line) {
        synchronized (OUT) {
            System.out.println(line);
            System.out.flush();
        }
    }

    /** An exception as one line of output. */
    static String oneLine(Exception e) {
        return e.toString().replace('\n', ' ');
    }

    /**
     * A started client with the workers' settings (10 s sessions, a 5 s connection timeout,
     * Curator's exponential backoff); {@code defaultData}, if not null, is the data of the nodes
     * it creates without data.
     */
    static CuratorFramework startClient(String connectString, byte[] defaultData) {
        CuratorFrameworkFactory.Builder builder = CuratorFrameworkFactory.builder()
                .connectString(connectString)
                .sessionTimeoutMs(10000)
                .connectionTimeoutMs(5000)
                .retryPolicy(new ExponentialBackoffRetry(100, 10));
        if (defaultData != null) {
            builder = builder.defaultData(defaultData);
        }
        CuratorFramework client = builder.build();
        client.start();
        return client;
    }

    /** The path of the child of {@code parent} that {@code client}'s session owns, or "?". */
    static String ownNode(CuratorFramework client, String parent) throws Exception {
        long session = client.getZookeeperClient().getZooKeeper().getSessionId();
        for (String child : client.getChildren().forPath(parent)) {
            String path = parent + "/" + child;
            Stat stat = client.checkExists().forPath(path);
            if (stat != null && stat.getEphemeralOwner() == session) {
                return path;
            }
        }
        return "?";
    }

    /** Runs {@code then} on a daemon thread once every one of {@code threads} has ended. */
    static void whenAllEnd(List<Thread> threads, String name, Runnable then) {
        Thread waiter = new Thread(() -> {
            for (Thread thread : threads) {
                try {
                    thread.join();
                } catch (InterruptedException e) {
                    return;
                }
            }
            then.run();
        }, name);
        waiter.setDaemon(true);
        waiter.start();
    }

    /** One participant: the commands queued for it, and the daemon thread that runs them. */
    abstract static class Slot implements Runnable {
        final String name;
        final LinkedBlockingQueue<String[]> commands = new LinkedBlockingQueue<>();
        final Thread thread;

        Slot(String name) {
            this.name = name;
            this.thread = new Thread(this, "slot-" + name);
            this.thread.setDaemon(true);
        }

        /** Starts the thread; called by the subclass once its own fields are set. */
        final void start() {
            thread.start();
        }

        /** Runs one command (its first word names it); false if the slot does not know it. */
        abstract boolean handle(String[] command) throws Exception;

        @Override
        public final void run() {
            while (true) {
                String[] command;
                try {
                    command = commands.take();
                } catch (InterruptedException e) {
                    return;
                }
                try {
                    if (!handle(command)) {
                        say("ERROR " + name + " unknown slot command " + command[0]);
                    }
                } catch (Exception e) {
                    say("ERROR " + name + " " + oneLine(e));
                }
            }
        }
    }

    /** Runs one command line other than {@code QUIT}; false if the worker does not know it. */
    abstract boolean handle(String[] command) throws Exception;

    /** Closes everything and says {@code BYE}. */
    abstract void quit();

    /**
     * Waits (at most 30 s) for {@code admin} to connect, says {@code READY}, and serves the
     * commands on stdin until {@code QUIT} or the end of the input; then quits.
     */
    final void serve(CuratorFramework admin, String connectString) throws Exception {
        if (!admin.blockUntilConnected(30, TimeUnit.SECONDS)) {
            say("ERROR - could not connect to " + connectString);
            return;
        }
        say("READY");
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
        String line;
        while ((line = in.readLine()) != null) {
            String[] command = line.trim().split("\\s+");
            if (command.length == 0 || command[0].isEmpty()) {
                continue;
            }
            if (command[0].equals("QUIT")) {
                break;
            }
            try {
                if (!handle(command)) {
                    say("ERROR - unknown command " + command[0]);
                }
            } catch (Exception e) {
                say("ERROR - " + oneLine(e));
            }
        }
        quit();
    }
}
