// The one loopback rule (core/loopback.ts), which the Host guard, the Origin guard and the
// bind-address check share: `localhost`, 127.0.0.0/8 or [::1], optional port, nothing else.
import assert from "node:assert/strict";
import { isLoopback, parseLoopbackHost, parseLoopbackOrigin } from "../core/loopback.ts";

Deno.test("loopback - only localhost, 127.0.0.0/8 and [::1] (with a port) are loopback", () => {
  const yes = ["localhost", "LOCALHOST:8000", "127.0.0.1", "127.255.0.9:1", "[::1]", "[::1]:65535"];
  for (const host of yes) assert.notEqual(parseLoopbackHost(host), null, host);
  const no = [
    "127.0.0.1.evil.example",
    "127.0.0.1.evil.example:8000",
    "127.evil",
    "127.0.0",
    "127.0.0.256",
    "127.0.0.01",
    "localhost.evil.example",
    "app.localhost",
    "[::1].evil",
    "[::2]",
    "127.0.0.1:0",
    "127.0.0.1:70000",
    "127.0.0.1:80:80",
    "evil@127.0.0.1",
    "",
  ];
  for (const host of no) assert.equal(parseLoopbackHost(host), null, host);
  assert.deepEqual(parseLoopbackHost("127.0.0.1:8000"), { hostname: "127.0.0.1", port: 8000 });
  assert.equal(isLoopback("::1"), true, "a bind address may be written bare");
  assert.equal(isLoopback("127.0.0.1.evil.example"), false);
});

Deno.test("loopback - an Origin is parsed by the same rule", () => {
  assert.deepEqual(parseLoopbackOrigin("http://127.0.0.1:8000"), {
    hostname: "127.0.0.1",
    port: 8000,
  });
  assert.notEqual(parseLoopbackOrigin("https://[::1]"), null);
  for (
    const origin of [
      "http://127.0.0.1.evil.example",
      "null",
      "http://localhost/x",
      "ftp://localhost",
    ]
  ) {
    assert.equal(parseLoopbackOrigin(origin), null, origin);
  }
});
