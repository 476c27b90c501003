// A route's `config` is enforced by the app, not by the handler: the body and the query
// string are validated before the handler runs (it reads `c.req.valid(…)` and never
// parses), a bad one answers the 400 naming the field, and a path parameter that names
// a model answers the unknown-model 404 before any body is read.
import assert from "node:assert/strict";
import { z } from "zod";
import { createApp } from "../server/app.ts";
import { type Handlers, route, type RouteConfig } from "../server/http/context.ts";
import { startService } from "../server/service.ts";
import { testConfig } from "./_service.ts";

const config = {
  summary: "A test route whose handler never parses",
  auth: "read",
  params: { id: "model" },
  body: z.object({ count: z.number().int().min(1, "must be at least 1") }).strict(),
  query: z.object({ verbose: z.enum(["yes", "no"]).default("no") }),
} satisfies RouteConfig;

/** What the handlers were given, call by call. */
const seen: unknown[] = [];

const handler: Handlers<"/:prefix/echo/:id", typeof config> = {
  POST: (c) => {
    const got = { id: c.req.param("id"), body: c.req.valid("json"), query: c.req.valid("query") };
    seen.push(got);
    return c.json(got);
  },
  GET: (c) => c.json({ query: c.req.valid("query") }),
};

const post = (body: string): RequestInit => ({
  method: "POST",
  headers: { "content-type": "application/json" },
  body,
});

Deno.test("routes - config.body and config.query are enforced by the app; the handler never parses", async () => {
  await using service = await startService(testConfig({ gpu: "cpu" }));
  const app = createApp(service.services, [route("/:prefix/echo/:id", { handler, config })]);
  const model = service.services.catalog.ids()[0];

  const ok = await app.request(`/api/echo/${model}?verbose=yes`, post('{"count": 2}'));
  assert.equal(ok.status, 200, await ok.clone().text());
  assert.deepEqual(await ok.json(), {
    id: model,
    body: { count: 2 },
    query: { verbose: "yes" },
  });
  // The query's default is applied before the handler sees it; GET reads no body.
  const get = await app.request(`/api/echo/${model}`);
  assert.deepEqual(await get.json(), { query: { verbose: "no" } });

  const refused: Array<[string, string, number, string, RegExp]> = [
    ["", '{"count": 0}', 400, "bad_body", /^field "count": must be at least 1$/],
    ["", '{"count": 1.5}', 400, "bad_body", /field "count"/],
    [
      "",
      '{"count": 1, "extra": true}',
      400,
      "bad_body",
      /field "\(body\)".*unrecognized key.*"extra"/i,
    ],
    ["", "", 400, "bad_body", /field "count"/], // an empty body is {}: count is missing
    ["", "{not json", 400, "bad_json", /The body is not valid JSON/],
    ["?verbose=maybe", '{"count": 1}', 400, "bad_query", /query parameter "verbose"/],
  ];
  for (const [query, body, status, code, message] of refused) {
    const response = await app.request(`/api/echo/${model}${query}`, post(body));
    const answer = await response.json();
    assert.equal(response.status, status, `${query} ${body}: ${JSON.stringify(answer)}`);
    assert.equal(answer.error.code, code, body);
    assert.match(answer.error.message, message, body);
  }
  // The only calls that reached the handler are the valid ones.
  assert.equal(seen.length, 1);

  // A model that does not exist: the 404 comes before the (bad) body is looked at.
  const unknown = await app.request("/api/echo/nope", post("{not json"));
  assert.equal(unknown.status, 404);
  assert.match((await unknown.json()).error.message, /Unknown model "nope": expected one of /);

  // The OpenAI-compatible paths answer the same refusal in OpenAI's shape.
  const openAi = await app.request(`/v1/echo/${model}`, post('{"count": "two"}'));
  assert.equal(openAi.status, 400);
  const { error } = await openAi.json();
  assert.deepEqual(Object.keys(error).sort(), ["code", "message", "param", "type"]);
  assert.equal(error.code, "bad_body");
  assert.equal(error.type, "invalid_request_error");
  assert.match(error.message, /field "count"/);
  assert.equal(seen.length, 1);
});

Deno.test("routes - a real route's body is checked before its handler moves anything", async () => {
  await using service = await startService(testConfig({ gpu: "cpu" }));
  const model = service.services.catalog.ids()[0];
  const response = await service.app.request(
    `/api/v1/models/${model}/load`,
    post('{"device": "tpu"}'),
  );
  assert.equal(response.status, 400);
  assert.match((await response.json()).error.message, /field "device": must be "gpu" or "cpu"/);
  assert.equal(service.services.scheduler.model(model).placement, "none");
  // An unknown model with the same bad body: the 404 first, as before.
  const unknown = await service.app.request("/api/v1/models/nope/load", post('{"device": "tpu"}'));
  assert.equal(unknown.status, 404);
});
