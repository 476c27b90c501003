// deploy/: the Prometheus scrape config and rules pass promtool's checks and unit tests,
// and the Kubernetes DaemonSet starts Headroom with settings Headroom accepts.
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { parseAllDocuments } from "yaml";
import { parseConfig } from "../core/config.ts";

const PROMETHEUS_DIR = fileURLToPath(new URL("../deploy/prometheus/", import.meta.url));
const DAEMONSET = new URL("../deploy/kubernetes/daemonset.yaml", import.meta.url);

async function promtool(...args: string[]): Promise<{ code: number; output: string }> {
  const out = await new Deno.Command("promtool", { args, cwd: PROMETHEUS_DIR }).output();
  const decode = (bytes: Uint8Array) => new TextDecoder().decode(bytes);
  return { code: out.code, output: decode(out.stdout) + decode(out.stderr) };
}

Deno.test("deploy/prometheus - promtool checks the config and rules, and the rules' unit tests pass", async () => {
  const config = await promtool("check", "config", "prometheus.yml");
  assert.equal(config.code, 0, config.output);
  const rules = await promtool("check", "rules", "headroom.rules.yml");
  assert.equal(rules.code, 0, rules.output);
  assert.match(rules.output, /SUCCESS: 10 rules found/);
  const unit = await promtool("test", "rules", "headroom.rules.test.yml");
  assert.equal(unit.code, 0, unit.output);
  assert.match(unit.output, /SUCCESS/);
});

Deno.test("deploy/prometheus - every alert the issue asks for exists and is unit-tested", async () => {
  const rules = await Deno.readTextFile(`${PROMETHEUS_DIR}/headroom.rules.yml`);
  const tests = await Deno.readTextFile(`${PROMETHEUS_DIR}/headroom.rules.test.yml`);
  for (
    const alert of [
      "HeadroomVramHigh",
      "HeadroomEvictionStorm",
      "HeadroomGpuLost",
      "HeadroomReleaseLeak",
    ]
  ) {
    assert.match(rules, new RegExp(`alert: ${alert}\\n`), alert);
    assert.match(tests, new RegExp(`alertname: ${alert}\\n`), `${alert} has a unit test`);
  }
  for (
    const record of ["node:headroom_available_bytes:sum", "node:headroom_evictions:per_minute"]
  ) {
    assert.match(rules, new RegExp(`record: ${record}\\n`), record);
  }
});

Deno.test("deploy/kubernetes - the DaemonSet runs one Headroom per GPU node with settings it accepts", async () => {
  const docs = parseAllDocuments(await Deno.readTextFile(DAEMONSET)).map((d) => d.toJS());
  const daemonSet = docs.find((d) => d?.kind === "DaemonSet");
  assert.ok(daemonSet, "a DaemonSet");
  const pod = daemonSet.spec.template;
  const [container] = pod.spec.containers;
  assert.equal(container.resources.limits["nvidia.com/gpu"], 1);
  const env = new Map<string, { valueFrom?: Record<string, Record<string, string>> }>(
    container.env.map((e: { name: string }) => [e.name, e]),
  );
  assert.equal(env.get("HEADROOM_TOKEN")?.valueFrom?.secretKeyRef?.name, "headroom-token");
  assert.equal(env.get("HEADROOM_NODE_NAME")?.valueFrom?.fieldRef?.fieldPath, "spec.nodeName");
  assert.equal(container.readinessProbe.httpGet.path, "/api/v1/health");
  assert.equal(container.livenessProbe.httpGet.path, "/api/v1/health");
  const annotations = pod.metadata.annotations;
  assert.equal(annotations["prometheus.io/scrape"], "true");
  assert.equal(Number(annotations["prometheus.io/port"]), container.ports[0].containerPort);
  const dataDir = container.volumeMounts.find((m: { name: string }) => m.name === "data");
  const volume = pod.spec.volumes.find((v: { name: string }) => v.name === "data");
  assert.ok(volume.hostPath.path, "the data dir is on the host");
  // Its flags and variables parse, binding beyond loopback with the token from the Secret.
  const args: string[] = container.args.slice(container.args.indexOf("start") + 1);
  const parsed = parseConfig(
    args,
    new Map([["HEADROOM_TOKEN", "x".repeat(32)], ["HEADROOM_NODE_NAME", "gpu-node-1"]]),
  );
  assert.equal(parsed.help, false);
  if (parsed.help) return;
  assert.equal(parsed.config.host, "0.0.0.0");
  assert.equal(parsed.config.port, container.ports[0].containerPort);
  assert.equal(parsed.config.dataDir, dataDir.mountPath);
  assert.equal(parsed.config.nodeName, "gpu-node-1");
  const service = docs.find((d) => d?.kind === "Service");
  assert.equal(service.spec.clusterIP, "None", "headless, for Prometheus' DNS discovery");
});
