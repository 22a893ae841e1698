import assert from "node:assert/strict";
import { test } from "node:test";

import { needsRestart, resolveServerCommand, serverSettings } from "../src/config";

test("the server gets the flashcode section without the extension's own keys", () => {
  const section = {
    serverCommand: ["flashcode", "serve"],
    pythonPath: "/venv/bin/python",
    trace: { server: "verbose" },
    modelPath: "/models/mine",
    maxNewTokens: 32,
    cache: { enabled: false, maxSizeMb: 16, excludeGlobs: ["**/.env"] },
    tests: { runGenerated: true, timeoutSeconds: 60 },
  };
  assert.deepEqual(serverSettings(section), {
    modelPath: "/models/mine",
    maxNewTokens: 32,
    cache: { enabled: false, maxSizeMb: 16, excludeGlobs: ["**/.env"] },
    tests: { runGenerated: true, timeoutSeconds: 60 },
  });
});

test("an explicit server command wins over the Python interpreter", () => {
  assert.deepEqual(resolveServerCommand({ serverCommand: ["/opt/fc/bin/flashcode", "serve", "--log", "x"], pythonPath: "/p" }), {
    command: "/opt/fc/bin/flashcode",
    args: ["serve", "--log", "x"],
  });
});

test("a Python interpreter runs the server module", () => {
  assert.deepEqual(resolveServerCommand({ serverCommand: [], pythonPath: " /venv/bin/python " }), {
    command: "/venv/bin/python",
    args: ["-m", "lsp_server"],
  });
});

test("with nothing set, the console script from PATH starts", () => {
  assert.deepEqual(resolveServerCommand({}), { command: "flashcode", args: ["serve"] });
});

test("only the settings that pick the server process restart it", () => {
  assert.equal(needsRestart((key) => key === "flashcode.pythonPath"), true);
  assert.equal(needsRestart((key) => key === "flashcode.maxNewTokens"), false);
});
