// A fresh clone's first `deno install` (run by `deno task start`) prints nothing a new user
// would take for an error: deno.json denies the npm install scripts Headroom does not need
// (docs/install_scripts.md says why each is safe to skip).
import assert from "node:assert/strict";

const ROOT = new URL("../", import.meta.url);

Deno.test("install - into an empty node_modules: no 'Ignored build scripts' warning, exit 0", async () => {
  const dir = await Deno.makeTempDir({ prefix: "headroom-install-" });
  try {
    for (const file of ["deno.json", "deno.lock"]) {
      await Deno.copyFile(new URL(file, ROOT), `${dir}/${file}`);
    }
    const output = await new Deno.Command(Deno.execPath(), {
      args: ["install", "--quiet"],
      cwd: dir,
      stdout: "piped",
      stderr: "piped",
    }).output();
    const stderr = new TextDecoder().decode(output.stderr);
    assert.equal(output.code, 0, stderr);
    assert.doesNotMatch(stderr, /Ignored build scripts|approve-scripts|Warning/i, stderr);
    // The CPU engine Headroom loads is in the package itself, script or not.
    const addon = `${dir}/node_modules/onnxruntime-node/bin/napi-v6/linux/x64/libonnxruntime.so.1`;
    assert.ok((await Deno.stat(addon)).isFile, addon);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
