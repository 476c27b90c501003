// A fleet on loopback: a real Prometheus (Debian's `prometheus`) scrapes two Headroom
// instances every second with deploy/prometheus/headroom.rules.yml loaded, and its HTTP
// API shows both nodes' headroom_model_loaded series, the recording rules, and the VRAM
// alert's expression (and the alert pending) for the node whose GPU is 95% full.
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { serveOnFakeGpu } from "./_service.ts";

const RULES = fileURLToPath(new URL("../deploy/prometheus/headroom.rules.yml", import.meta.url));
const GiB = 2 ** 30;

/** A free loopback port (Prometheus takes a fixed address). */
function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr as Deno.NetAddr;
  listener.close();
  return port;
}

interface PromSample {
  metric: Record<string, string>;
  value: [number, string];
}

Deno.test({
  name:
    "prometheus fleet - a real Prometheus scrapes two nodes; both nodes' models and the VRAM alert show",
  fn: async () => {
    await using nodeA = await serveOnFakeGpu({ nodeName: "node-a" });
    await using nodeB = await serveOnFakeGpu(
      { nodeName: "node-b" },
      (gpu) => gpu.setOtherUsed(0, Math.round(7.6 * GiB)), // of 8 GiB: 95 %
    );
    await nodeA.service.services.scheduler.load("silero-vad", "cpu");
    const dir = await Deno.makeTempDir({ prefix: "headroom-prometheus-" });
    const port = freePort();
    let child: Deno.ChildProcess | null = null;
    try {
      await Deno.writeTextFile(
        `${dir}/prometheus.yml`,
        [
          "global:",
          "  scrape_interval: 1s",
          "  evaluation_interval: 1s",
          "rule_files:",
          `  - ${RULES}`,
          "scrape_configs:",
          "  - job_name: headroom",
          "    static_configs:",
          `      - targets: ["${new URL(nodeA.url).host}", "${new URL(nodeB.url).host}"]`,
          "",
        ].join("\n"),
      );
      child = new Deno.Command("prometheus", {
        args: [
          `--config.file=${dir}/prometheus.yml`,
          `--storage.tsdb.path=${dir}/data`,
          `--web.listen-address=127.0.0.1:${port}`,
          "--log.level=warn",
        ],
        stdout: "null",
        stderr: "piped",
      }).spawn();
      const stderr = new Response(child.stderr).text();
      const api = `http://127.0.0.1:${port}/api/v1`;
      const query = async (expr: string): Promise<PromSample[]> => {
        const response = await fetch(`${api}/query?query=${encodeURIComponent(expr)}`);
        const body = await response.json();
        assert.equal(body.status, "success", JSON.stringify(body));
        return body.data.result;
      };
      /** Polls `check` until it holds (Prometheus starts, scrapes, evaluates) or 30 s pass. */
      const eventually = async <T>(what: string, check: () => Promise<T | null>): Promise<T> => {
        const deadline = Date.now() + 30_000;
        let last: unknown = null;
        while (Date.now() < deadline) {
          try {
            const result = await check();
            if (result !== null) return result;
          } catch (error) {
            last = error;
          }
          await new Promise((resolve) => setTimeout(resolve, 250));
        }
        throw new Error(
          `${what}: not within 30 s (last error: ${last}); prometheus said: ${await Promise.race([
            stderr,
            new Promise((r) => setTimeout(() => r("…"), 100)),
          ])}`,
        );
      };

      const loaded = await eventually("both nodes' headroom_model_loaded", async () => {
        const result = await query('headroom_model_loaded{model="silero-vad"}');
        const hosts = new Set(result.map((s) => s.metric.Hostname));
        return hosts.has("node-a") && hosts.has("node-b") ? result : null;
      });
      const value = (host: string, device: string) =>
        loaded.find((s) => s.metric.Hostname === host && s.metric.device === device)?.value[1];
      assert.equal(value("node-a", "cpu"), "1", "silero-vad is loaded on node-a's CPU");
      assert.equal(value("node-b", "cpu"), "0");
      assert.equal(value("node-b", "gpu"), "0");

      // The VRAM alert's expression selects node-b's GPU only, labelled as DCGM labels it.
      const high = await eventually("the HeadroomVramHigh expression", async () => {
        const result = await query(
          "headroom_gpu_memory_used_bytes / headroom_gpu_memory_total_bytes >= 0.9",
        );
        return result.length > 0 ? result : null;
      });
      assert.deepEqual(high.map((s) => s.metric.Hostname), ["node-b"]);
      assert.ok(high[0].metric.UUID && high[0].metric.modelName && high[0].metric.gpu === "0");
      // A recording rule evaluated over both nodes.
      await eventually("node:headroom_gpu_free_bytes:sum for node-b", async () => {
        const result = await query('node:headroom_gpu_free_bytes:sum{Hostname="node-b"}');
        return result.length === 1 ? result : null;
      });
      // The alert itself is pending (it fires after 2 minutes at ≥ 90 %).
      const alert = await eventually("HeadroomVramHigh pending", async () => {
        const body = await (await fetch(`${api}/alerts`)).json();
        const found = body.data.alerts.find((a: { labels: Record<string, string> }) =>
          a.labels.alertname === "HeadroomVramHigh"
        );
        return found ?? null;
      });
      assert.equal(alert.state, "pending");
      assert.equal(alert.labels.Hostname, "node-b");
    } finally {
      if (child) {
        try {
          child.kill("SIGTERM");
        } catch { /* already gone */ }
        await child.status;
      }
      await Deno.remove(dir, { recursive: true });
    }
  },
});
