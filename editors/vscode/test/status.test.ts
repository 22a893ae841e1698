import assert from "node:assert/strict";
import { test } from "node:test";

import { formatStatus, isStatusParams } from "../src/status";

test("ready shows the last latency in the status bar and model and device in the tooltip", () => {
  const view = formatStatus({ state: "ready", model: "flashcode-tiny", device: "cpu", lastLatencyMs: 41.6 });
  assert.equal(view.text, "$(zap) flashcode 42 ms");
  assert.match(view.tooltip, /flashcode-tiny/);
  assert.match(view.tooltip, /cpu/);
  assert.equal(view.background, undefined);
});

test("loading spins and says so", () => {
  const view = formatStatus({ state: "loading", model: "m", device: "cuda", message: "loading weights" });
  assert.equal(view.text, "$(loading~spin) flashcode loading");
  assert.match(view.tooltip, /loading weights/);
});

test("an error is coloured", () => {
  const view = formatStatus({ state: "error", model: "m", device: "cpu", message: "no tokenizer.json" });
  assert.equal(view.background, "statusBarItem.errorBackground");
  assert.match(view.tooltip, /no tokenizer\.json/);
});

test("payloads that are not a status are recognised", () => {
  assert.equal(isStatusParams({ state: "ready", model: "m", device: "cpu" }), true);
  assert.equal(isStatusParams({ state: "sleeping" }), false);
  assert.equal(isStatusParams({ state: "disabled", model: "m", device: "cpu" }), false); // never sent
  assert.equal(isStatusParams(null), false);
});
