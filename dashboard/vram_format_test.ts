import assert from "node:assert/strict";
import { formatPercent, vramLevel } from "./vram_format.ts";

Deno.test("vramLevel - the critical warning agrees with the percent shown", () => {
  for (
    const [percent, shown, level] of [
      [89.6, "90 %", "critical"],
      [89.5, "90 %", "critical"],
      [89.4, "89 %", "high"],
      [79.5, "80 %", "high"],
      [79.49, "79 %", "warn"],
      [59.5, "60 %", "warn"],
      [9.96, "10 %", "ok"],
      [9.94, "9.9 %", "ok"],
    ] as const
  ) {
    assert.equal(formatPercent(percent), shown, `${percent}`);
    assert.equal(vramLevel(percent), level, `${percent} reads ${shown}`);
  }
});
