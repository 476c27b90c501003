// API fuzz: thousands of generated malformed requests against every route of the
// manifest, in process through `app.request` (bad JSON, wrong types, huge numbers,
// deeply nested JSON, unknown ids, path tricks, NUL bytes, very long paths, wrong
// methods, oversize bodies, wrong content types, garbage headers and tokens). Every
// answer must come back (no crash, no hang), none may be a 5xx, and every error must be
// JSON `{error: {code, message}}`. The PRNG is seeded; a failure prints the seed
// (rerun with HEADROOM_SEED=<seed>). HEADROOM_HEAVY=1 sends ten times as many.
import assert from "node:assert/strict";
import { startService } from "../server/service.ts";
import { routes } from "../routes/_manifest.ts";
import { testConfig } from "./_service.ts";
import { jsonPost, writeArtifact, writeModelsFile } from "./fixtures/artifact.ts";
import { prng } from "../core/random.ts";
import { errorShapeOf } from "../server/http/http_error.ts";

const HEAVY = Deno.env.get("HEADROOM_HEAVY") === "1";
const TOKEN = "fuzz-token-0123456789abcdef";
const PLUGIN = new URL("./fixtures/double_sum_plugin.ts", import.meta.url).pathname;
/** The catalog: one model with a plugin, one with tensors. */
const IDS = ["fz-plugin", "fz-tensor"] as const;
/** A request that takes longer than this counts as hung. */
const HANG_MS = 20_000;

class Gen {
  /**
   * How many more times a generated request may name a real model: a valid request
   * to a real model loads or moves it (a worker start), which is not what this tests.
   */
  realIdBudget: number;
  constructor(readonly random: () => number, realIdBudget: number) {
    this.realIdBudget = realIdBudget;
  }
  /** A catalog id while the budget lasts, then an unknown one. */
  id(): string {
    if (this.realIdBudget <= 0) return "fz-gone";
    this.realIdBudget--;
    return this.pick(IDS);
  }
  int(max: number): number {
    return Math.floor(this.random() * max);
  }
  chance(p: number): boolean {
    return this.random() < p;
  }
  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)];
  }
  /** A string of `length` characters from `alphabet`. */
  text(length: number, alphabet = "abcdefghijklmnopqrstuvwxyz0123456789-_."): string {
    let out = "";
    for (let i = 0; i < length; i++) out += alphabet[this.int(alphabet.length)];
    return out;
  }
  /** Any string, control characters and astral code points included. */
  wild(length: number): string {
    let out = "";
    for (let i = 0; i < length; i++) {
      const kind = this.int(6);
      if (kind === 0) out += String.fromCharCode(this.int(32));
      else if (kind === 1) out += String.fromCodePoint(0x1F300 + this.int(200));
      else if (kind === 2) out += String.fromCharCode(0xD800 + this.int(0x800)); // lone surrogate
      else out += String.fromCharCode(32 + this.int(95));
    }
    return out;
  }
  number(): number {
    return this.pick([
      0,
      -0,
      1,
      -1,
      0.5,
      2 ** 31,
      2 ** 31 - 1,
      -(2 ** 31),
      2 ** 53 + 1,
      -(2 ** 63),
      1e308,
      -1e308,
      5e-324,
      Number.MAX_SAFE_INTEGER,
      this.random() * 1e6,
      this.int(10),
    ]);
  }
  /** A random JSON value, `depth` levels deep at most. */
  value(depth: number): unknown {
    const kind = this.int(depth > 0 ? 8 : 5);
    switch (kind) {
      case 0:
        return null;
      case 1:
        return this.chance(0.5);
      case 2:
        return this.number();
      case 3:
        return this.chance(0.5) ? this.text(this.int(20)) : this.wild(this.int(20));
      case 4:
        return this.pick(["gpu", "cpu", "none", "fz-tensor-x", "", "__proto__", "constructor"]);
      case 5:
      case 6: {
        const out: Record<string, unknown> = {};
        for (let i = this.int(5); i > 0; i--) out[this.key()] = this.value(depth - 1);
        return out;
      }
      default:
        return Array.from({ length: this.int(6) }, () => this.value(depth - 1));
    }
  }
  key(): string {
    return this.pick([
      "device",
      "model",
      "models",
      "pipelines",
      "id",
      "inputs",
      "payload",
      "input",
      "type",
      "dims",
      "data",
      "values",
      "samples",
      "__proto__",
      "constructor",
      "prototype",
      "",
      this.text(8),
      this.wild(4),
    ]);
  }
}

/** A valid body for a route (the starting point of structure-aware mutations). */
function validBody(path: string, gen: Gen): unknown {
  const id = gen.id();
  switch (path) {
    case "/api/v1/hardware/vram/check":
      return { pipelines: [id] };
    case "/api/v1/models/test-load":
      return { models: [id], device: "cpu" };
    case "/api/v1/models/:id/load":
      return { device: "cpu" };
    case "/api/v1/chains":
      return { id: "fuzz", pipelines: [gen.id(), gen.id()] };
    case "/v1/models/switch":
      return { model: id };
    case "/api/v1/pipelines/:id/infer":
      return {
        inputs: { input: { type: "float32", dims: [1, 4], data: [1, 2, 3, 4] } },
      };
    default:
      return {};
  }
}

/** Changes one thing somewhere in a JSON value. */
function mutate(value: unknown, gen: Gen, depth = 0): unknown {
  if (depth > 6 || value === null || typeof value !== "object" || gen.chance(0.25)) {
    return gen.pick([
      () => gen.value(2),
      () => gen.number(),
      () => String(value),
      () => [value],
      () => ({ value }),
      () => undefined,
      () => gen.text(70_000 + gen.int(1000)),
    ])();
  }
  if (Array.isArray(value)) {
    const copy = [...value];
    if (copy.length === 0 || gen.chance(0.3)) copy.push(gen.value(2));
    else {
      const i = gen.int(copy.length);
      copy[i] = mutate(copy[i], gen, depth + 1);
    }
    return copy;
  }
  const copy: Record<string, unknown> = { ...value as Record<string, unknown> };
  const keys = Object.keys(copy);
  if (keys.length === 0 || gen.chance(0.2)) copy[gen.key()] = gen.value(2);
  else {
    const key = gen.pick(keys);
    if (gen.chance(0.15)) delete copy[key];
    else copy[key] = mutate(copy[key], gen, depth + 1);
  }
  return copy;
}

/** An infer body with tensors that are wrong in one way or another. */
function badTensors(gen: Gen): unknown {
  const type = gen.pick(["float32", "int32", "int64", "uint8", "int8", "bool", "float16", ""]);
  const dims = Array.from(
    { length: gen.int(10) },
    () => gen.pick([0, 1, 4, -1, 1.5, 2 ** 31, 2 ** 31 + 1, 1e308, 65536]),
  );
  const length = gen.pick([0, 1, 4, 16, 1000]);
  const data = Array.from(
    { length },
    () => gen.pick<unknown>([gen.number(), "12345678901234567890", "1.5", "x", true, null, []]),
  );
  return { inputs: { [gen.pick(["input", "nope", "", "__proto__"])]: { type, dims, data } } };
}

const PATH_TRICKS = [
  "..",
  "%2e%2e",
  "%2E%2E%2F%2E%2E%2Fetc%2Fpasswd",
  "..%2F..%2F..%2Fetc%2Fpasswd",
  "..%252F..%252Fetc",
  "%00",
  "fz-plugin%00",
  "fz-plugin%00.onnx",
  "%ff%fe",
  "%",
  "%zz",
  "%E0%A4%A",
  "%C0%AE%C0%AE",
  "%F0%9F%92%A9",
  "%20",
  "%2F",
  "a%2Fb",
  ".",
  "~",
  "CON",
  "__proto__",
  "constructor",
  "toString",
  "hasOwnProperty",
  "-1",
  "1e309",
  "ocr-dett",
  "FZ-PLUGIN",
  "fz-plugin.",
  "'%20OR%201=1--",
  "%3Cscript%3E",
  "%22%3E%3Cimg%3E",
];

const SUFFIXES = [
  "",
  "",
  "",
  "/",
  "//",
  "/..",
  "/./",
  "/%2e%2e/",
  "?",
  "?a=%",
  "?seconds=1e400&points=-1",
  "?seconds=&points=",
  "?points=5000&seconds=1",
  "?seconds=abc",
  "?seconds=0x10",
  "?__proto__=1",
  "#frag",
  ";jsessionid=1",
  "%00",
  "/extra",
];

const METHODS = [
  "GET",
  "POST",
  "PUT",
  "DELETE",
  "PATCH",
  "OPTIONS",
  "HEAD",
  "PROPFIND",
  "get",
  "patch",
  "FOO",
];

const CONTENT_TYPES = [
  "application/json",
  "application/json",
  "application/json; charset=utf-8",
  "application/json; charset=utf-16",
  "text/plain",
  "application/x-www-form-urlencoded",
  "multipart/form-data",
  "multipart/form-data; boundary=xyz",
  "image/png",
  "image/jpeg",
  "application/octet-stream",
  "",
  "*/*",
  ";;;",
  "application/json;;;;boundary=",
  "APPLICATION/JSON",
];

/** One generated request, described for failure messages. */
interface Case {
  method: string;
  url: string;
  init: RequestInit;
  describe: string;
  route: string;
}

function generate(gen: Gen, hostile: boolean): Case {
  const entry = gen.chance(0.05) ? null : gen.pick(routes);
  const routePath = entry ? entry[0] : gen.pick([
    "/api/v2/models",
    "/api/v1",
    "/api",
    "/api/v1/models/",
    "/static/build/",
    "/static/../deno.json",
    "/api/v1/pipelines/x/y/z/infer",
    "/" + gen.text(gen.int(40), "abc/%.-"),
  ]);
  const handlerMethods = entry ? Object.keys(entry[1]) : ["GET"];
  // Naming a real model costs nothing on routes that only read it or run it (it stays
  // loaded); on the ones that move it, it spends the budget.
  const moves = /\/(load|offload|rehydrate|unload)$/.test(routePath);
  const idPart = () => {
    if (!moves && gen.chance(0.4)) return gen.pick(IDS);
    if (gen.chance(0.06)) return gen.id();
    if (gen.chance(0.02)) return gen.text(20_000 + gen.int(50_000));
    if (gen.chance(0.5)) return gen.pick(PATH_TRICKS);
    return encodeURIComponent(
      gen.chance(0.5) ? gen.text(1 + gen.int(70)) : gen.wild(8).toWellFormed(),
    );
  };
  let path = routePath.replace(":id", idPart).replace(":file", idPart);
  path += gen.pick(SUFFIXES);
  if (gen.chance(0.02)) path = "/" + "a/".repeat(5000 + gen.int(20_000)) + "x";
  const method = gen.chance(0.7) ? gen.pick(handlerMethods) : gen.pick(METHODS);
  const headers = new Headers();
  // Authorization: usually right (so bodies are fuzzed past the guard), else anything.
  if (!hostile || gen.chance(0.85)) headers.set("authorization", `Bearer ${TOKEN}`);
  else {
    const auth = gen.pick([
      "",
      "Bearer",
      "Bearer ",
      `Bearer ${TOKEN.slice(1)}`,
      `Basic ${btoa("a:b")}`,
      `Bearer ${gen.text(2000)}`,
      gen.text(30, "!#$%&'*+-.^_`|~abcXYZ019 "),
    ]);
    if (auth !== "" || gen.chance(0.5)) headers.set("authorization", auth);
  }
  const contentType = gen.pick(CONTENT_TYPES);
  if (contentType !== "" || gen.chance(0.3)) headers.set("content-type", contentType);
  if (gen.chance(0.3)) {
    headers.set(
      "accept",
      gen.pick(["application/json", "text/event-stream", "*/*", "text/html;q=0.1,;;", "x/y"]),
    );
  }
  if (gen.chance(0.2)) headers.set("accept-encoding", gen.pick(["br", "gzip", "zstd", "*", ",,,"]));
  if (gen.chance(0.15)) {
    for (let i = gen.int(4); i >= 0; i--) {
      headers.set(
        `x-${gen.text(1 + gen.int(20), "abcdefghijklmnopqrstuvwxyz-")}`,
        gen.text(gen.int(200), " !\"#$%&'()*+,-./0123456789:;<=>?@ABCXYZ[\\]^_`abcxyz{|}~\t"),
      );
    }
  }
  if (gen.chance(0.05)) headers.set("upgrade", "websocket");
  if (gen.chance(0.05)) headers.set("content-length", String(gen.pick([0, 1, 10, 2 ** 40, -1])));
  if (gen.chance(0.03)) headers.set("origin", "https://evil.example");

  let body: BodyInit | undefined;
  let bodyWhat = "none";
  if (method !== "GET" && method !== "HEAD" && method !== "get") {
    const kind = gen.int(14);
    if (kind === 0) {
      body = undefined;
    } else if (kind === 1) {
      body = gen.pick([
        "{",
        "{not json",
        "\u0000",
        "[1,2",
        "nul",
        "'single'",
        '{"a":1,}',
        "\uFEFF{}",
        '{"device":"cpu"}garbage',
        '{"a":"\\ud800"}',
        '{"a":"\\u00"}',
        "1e999",
        '{"pipelines":[1e999]}',
        "     ",
        "\n\n\n",
        "[]",
        "null",
        '"string"',
        "0",
        "true",
      ]);
      bodyWhat = `text ${JSON.stringify(body)}`;
    } else if (kind === 2) {
      const bytes = new Uint8Array(8 + gen.int(4096));
      for (let i = 0; i < bytes.length; i++) bytes[i] = gen.int(256);
      if (gen.chance(0.3)) bytes.set([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
      body = bytes;
      bodyWhat = `${bytes.length} random bytes`;
    } else if (kind === 3) {
      const depth = gen.pick([100, 1000, 10_000, 100_000]);
      const open = gen.chance(0.5) ? "[" : '{"a":';
      const close = open === "[" ? "]" : "}";
      body = open.repeat(depth) + "1" + close.repeat(depth);
      if (gen.chance(0.5)) body = `{"payload":${body}}`;
      bodyWhat = `nested ${depth} deep`;
    } else if (kind === 4) {
      const size = gen.pick([64 * 1024 + 1, 70_000, 300_000, 2 ** 20]);
      body = '{"pad":"' + "x".repeat(size) + '"}';
      bodyWhat = `oversize ${size}`;
    } else if (kind === 5) {
      const form = new FormData();
      for (let i = gen.int(3); i >= 0; i--) {
        const name = gen.pick(["image", "file", "", gen.text(5)]);
        if (gen.chance(0.5)) form.append(name, gen.text(gen.int(100)));
        else {
          const bytes = new Uint8Array(8 + gen.int(2000));
          for (let j = 0; j < bytes.length; j++) bytes[j] = gen.int(256);
          if (gen.chance(0.5)) bytes.set([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
          form.append(name, new File([bytes], gen.text(6) + ".png", { type: "image/png" }));
        }
      }
      body = form;
      headers.delete("content-type"); // the form sets its own boundary
      bodyWhat = "multipart form";
    } else if (kind === 6) {
      body = '--xyz\r\nContent-Disposition: form-data; name="image"\r\n\r\n' + gen.wild(50);
      headers.set("content-type", "multipart/form-data; boundary=xyz");
      bodyWhat = "broken multipart";
    } else if (kind === 7 && routePath.endsWith("/infer")) {
      body = JSON.stringify(badTensors(gen));
      bodyWhat = `tensors ${(body as string).slice(0, 200)}`;
    } else if (kind <= 9) {
      const value = gen.value(4);
      body = JSON.stringify(value);
      bodyWhat = `json ${(body as string).slice(0, 200)}`;
    } else {
      let value = validBody(routePath, gen);
      for (let i = 1 + gen.int(3); i > 0; i--) value = mutate(value, gen);
      body = JSON.stringify(value) ?? "";
      bodyWhat = `mutated ${(body as string).slice(0, 200)}`;
    }
  }
  // A test load with no model list loads every model: that spends the real-id budget.
  if (routePath === "/api/v1/models/test-load" && method.toUpperCase() === "POST") {
    if (gen.realIdBudget >= IDS.length) gen.realIdBudget -= IDS.length;
    else if (typeof body === "string" || body === undefined) {
      let parsed: unknown = undefined;
      try {
        parsed = (body ?? "").trim() === "" ? {} : JSON.parse(body ?? "");
      } catch { /* stays malformed */ }
      if (parsed !== null && typeof parsed === "object" && !Array.isArray(parsed)) {
        if (!("models" in parsed)) {
          body = JSON.stringify({ ...parsed, models: ["fz-gone"] });
          bodyWhat += " (+ unknown models)";
        }
      }
    }
  }
  const url = "http://localhost" + path;
  const init: RequestInit = { method, headers, body };
  const shortPath = path.length > 200 ? `${path.slice(0, 200)}…(${path.length} chars)` : path;
  return {
    method,
    url,
    init,
    route: entry ? entry[0] : "(unknown path)",
    describe: `${method} ${shortPath} content-type=${
      JSON.stringify(headers.get("content-type"))
    } body=${bodyWhat.slice(0, 300)}`,
  };
}

/** What a response must look like; null when fine, else why not. */
async function judge(request: Case, response: Response): Promise<string | null> {
  const type = response.headers.get("content-type") ?? "";
  if (response.status >= 500) {
    return `status ${response.status}: ${(await response.text()).slice(0, 500)}`;
  }
  if (type.includes("text/event-stream") || response.status === 101) {
    await response.body?.cancel();
    return response.status === 200 || response.status === 101
      ? null
      : `stream with status ${response.status}`;
  }
  const text = await response.text();
  if (request.method.toUpperCase() === "HEAD") return null;
  if (response.status < 400) {
    if (type.includes("application/json")) {
      try {
        JSON.parse(text);
      } catch {
        return `a ${response.status} JSON answer does not parse: ${text.slice(0, 200)}`;
      }
    }
    return null;
  }
  if (!type.includes("application/json")) {
    return `error ${response.status} is ${type || "untyped"}, not JSON: ${text.slice(0, 200)}`;
  }
  let body: { error?: { code?: unknown; message?: unknown } | string };
  try {
    body = JSON.parse(text);
  } catch {
    return `error ${response.status} body does not parse: ${text.slice(0, 200)}`;
  }
  // Under /v2 the Open Inference Protocol's own shape, `{"error": "…"}`.
  if (errorShapeOf(new URL(request.url).pathname) === "oip") {
    return typeof body?.error === "string" && body.error !== ""
      ? null
      : `error ${response.status} is not {error: message}: ${text.slice(0, 200)}`;
  }
  if (
    typeof body?.error !== "object" || typeof body.error.code !== "string" ||
    typeof body.error.message !== "string"
  ) {
    return `error ${response.status} is not {error: {code, message}}: ${text.slice(0, 200)}`;
  }
  if (body.error.message.length === 0) return `error ${response.status} has an empty message`;
  return null;
}

Deno.test({
  name: "fuzz - 10,000 malformed requests against every route: no 5xx, no crash, JSON errors",
  fn: async () => {
    const seed = Number(Deno.env.get("HEADROOM_SEED") ?? Math.floor(Math.random() * 2 ** 31));
    console.log(`fuzz seed ${seed} (rerun with HEADROOM_SEED=${seed})`);
    const gen = new Gen(prng(seed), HEAVY ? 400 : 60);
    const total = HEAVY ? 100_000 : 10_000;
    const concurrency = 32;
    await using service = await startService(testConfig({
      gpu: "cpu",
      token: TOKEN,
      modelsFile: writeModelsFile([
        { id: IDS[0], source: "synthetic:64KiB", plugin: PLUGIN },
        { id: IDS[1], source: "synthetic:64KiB" },
      ]),
    }));
    const { app, services } = service;
    // One valid request first, so that at least one model is loaded and the fuzz reaches it.
    const warm = await app.request(
      `/api/v1/models/${IDS[1]}/load`,
      jsonPost({ device: "cpu" }, { authorization: `Bearer ${TOKEN}` }),
    );
    assert.equal(warm.status, 200, await warm.text());

    const byStatus: Record<string, number> = {};
    const byRoute: Record<string, Record<string, number>> = {};
    const failures: string[] = [];
    let unsendable = 0;
    let crashes = 0;
    let hangs = 0;
    let sent = 0;
    const started = performance.now();
    const one = async (request: Case) => {
      let req: Request;
      try {
        req = new Request(request.url, request.init);
      } catch {
        unsendable++; // the client cannot even build it (an invalid URL or header)
        return;
      }
      sent++;
      let timer: ReturnType<typeof setTimeout> | undefined;
      try {
        const response = await Promise.race([
          Promise.resolve(app.fetch(req)),
          new Promise<never>((_, reject) => {
            timer = setTimeout(() => reject(new Error(`no answer in ${HANG_MS} ms`)), HANG_MS);
          }),
        ]);
        const status = String(response.status);
        byStatus[status] = (byStatus[status] ?? 0) + 1;
        const route = (byRoute[request.route] ??= {});
        route[status] = (route[status] ?? 0) + 1;
        const problem = await judge(request, response);
        if (problem) failures.push(`${request.describe}\n    → ${problem}`);
      } catch (error) {
        const message = (error as Error).message;
        if (message.startsWith("no answer")) hangs++;
        else crashes++;
        failures.push(`${request.describe}\n    → threw: ${(error as Error).stack ?? message}`);
      } finally {
        clearTimeout(timer);
      }
    };
    // A pool of `concurrency` clients, each sending its next request when the last is answered.
    let generated = 0;
    const client = async () => {
      while (generated - unsendable < total) {
        generated++;
        await one(generate(gen, true));
      }
    };
    await Promise.all(Array.from({ length: concurrency }, client));
    // Deliberately deep plugin payloads: they reach a worker (structured clone).
    for (const depth of [1000, 10_000, 100_000]) {
      const deep = "[".repeat(depth) + "1" + "]".repeat(depth);
      await one({
        method: "POST",
        url: `http://localhost/api/v1/pipelines/${IDS[0]}/infer`,
        init: {
          method: "POST",
          headers: { "content-type": "application/json", authorization: `Bearer ${TOKEN}` },
          body: `{"payload":{"values":${deep}}}`,
        },
        route: "/api/v1/pipelines/:id/infer",
        describe: `POST plugin infer with values nested ${depth} deep`,
      });
    }
    // WebSocket handshakes that are not: no Upgrade header, one without a key, odd case.
    for (const upgrade of [null, "websocket", "WebSocket", "h2c", ""]) {
      const headers: Record<string, string> = upgrade === null ? {} : { upgrade };
      if (upgrade === "WebSocket") headers["sec-websocket-key"] = "dGhlIHNhbXBsZSBub25jZQ==";
      await one({
        method: "GET",
        url: `http://localhost/api/v1/pipelines/${IDS[0]}/stream`,
        init: { method: "GET", headers },
        route: "/api/v1/pipelines/:id/stream",
        describe: `GET plugin stream with upgrade ${JSON.stringify(upgrade)}`,
      });
    }
    const seconds = (performance.now() - started) / 1000;
    // Still healthy after all that.
    const health = await app.request("/api/v1/health");
    assert.equal(health.status, 200);
    await health.body?.cancel();
    const transitions = services.events.recent(10_000).filter((e) => e.kind === "transition");
    const errors5xx = Object.entries(byStatus).filter(([s]) => Number(s) >= 500)
      .reduce((n, [, c]) => n + c, 0);
    await writeArtifact("fuzz", {
      seed,
      requestsGenerated: generated + 8,
      requestsSent: sent,
      unsendable,
      seconds: Number(seconds.toFixed(1)),
      byStatus,
      byRoute,
      errors5xx,
      crashes,
      hangs,
      malformedAnswers: failures.length - errors5xx - crashes - hangs,
      modelTransitions: transitions.length,
      failures: failures.slice(0, 50),
    });
    if (failures.length > 0) {
      throw new Error(
        `seed ${seed}: ${failures.length} bad answers of ${sent} (rerun with HEADROOM_SEED=${seed}):\n` +
          failures.slice(0, 15).join("\n"),
      );
    }
  },
});
