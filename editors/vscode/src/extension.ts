import * as vscode from "vscode";
import {
  DidChangeConfigurationNotification,
  ExecuteCommandRequest,
  LanguageClient,
  type LanguageClientOptions,
  type ServerOptions,
  State,
} from "vscode-languageclient/node";

import { needsRestart, resolveServerCommand, serverSettings } from "./config";
import { formatStatus, isStatusParams, startingStatus, stoppedStatus, type StatusView } from "./status";

const SECTION = "flashcode";
/** Server-side command names, from the server's executeCommandProvider. */
const SERVER_GENERATE_TESTS = "flashcode.generateTests";
/** How long the cursor rests before the server is told where it is: it then prefills the prompt
 * there before the next keystroke (warmContext). LSP itself says nothing of the cursor. */
const CURSOR_REST_MS = 300;
let cursorTimer: ReturnType<typeof setTimeout> | undefined;

let client: LanguageClient | undefined;
let statusItem: vscode.StatusBarItem;
let log: vscode.LogOutputChannel;

export async function activate(context: vscode.ExtensionContext): Promise<void> {
  log = vscode.window.createOutputChannel("flashcode", { log: true });
  statusItem = vscode.window.createStatusBarItem("flashcode.status", vscode.StatusBarAlignment.Right, 100);
  statusItem.name = "flashcode";
  statusItem.command = "flashcode.showOutput";
  showStatus(startingStatus());
  statusItem.show();
  context.subscriptions.push(log, statusItem);

  context.subscriptions.push(
    vscode.commands.registerCommand("flashcode.generateUnitTests", generateUnitTests),
    vscode.commands.registerCommand("flashcode.restartServer", restartServer),
    vscode.commands.registerCommand("flashcode.showOutput", () => log.show(true)),
    vscode.commands.registerCommand("flashcode.showStats", showStats),
    vscode.window.onDidChangeTextEditorSelection((event) => cursorRested(event.textEditor)),
    vscode.window.onDidChangeActiveTextEditor(cursorRested),
    { dispose: () => clearTimeout(cursorTimer) },
    vscode.workspace.onDidChangeConfiguration(async (event) => {
      if (needsRestart((key) => event.affectsConfiguration(key))) {
        log.info("server command changed: restarting the server");
        await restartServer();
      } else if (event.affectsConfiguration(SECTION)) {
        await pushSettings();
      }
    }),
  );

  await startClient();
}

export async function deactivate(): Promise<void> {
  await stopClient();
}

function createClient(): LanguageClient {
  const section = vscode.workspace.getConfiguration(SECTION);
  const { command, args } = resolveServerCommand(sectionObject(section));
  log.info(`starting the server: ${[command, ...args].join(" ")}`);
  const cwd = vscode.workspace.workspaceFolders?.[0]?.uri.fsPath;
  const serverOptions: ServerOptions = {
    command,
    // No `transport`: with TransportKind.stdio the client appends "--stdio", which `flashcode serve`
    // does not take. Without it the client still talks over stdin/stdout.
    args,
    options: cwd ? { cwd } : {},
  };
  const clientOptions: LanguageClientOptions = {
    // Every text file: the server itself answers nothing for languages outside `enabledLanguages`.
    documentSelector: [{ scheme: "file" }, { scheme: "untitled" }],
    outputChannel: log,
    initializationOptions: () => serverSettings(sectionObject(vscode.workspace.getConfiguration(SECTION))),
    // No `synchronize.configurationSection`: it would push the whole section, serverCommand and all,
    // in didChangeConfiguration. pushSettings() sends the server's part instead.
    middleware: {
      workspace: {
        // The server pulls "flashcode"; it must not see the extension's own keys (serverCommand, ...).
        configuration: async (params, token, next) => {
          const result = await next(params, token);
          if (!Array.isArray(result)) {
            return result;
          }
          return result.map((value, i) =>
            params.items[i]?.section === SECTION && typeof value === "object" && value !== null
              ? serverSettings(value as Record<string, unknown>)
              : value,
          );
        },
      },
    },
  };
  const created = new LanguageClient("flashcode", "flashcode", serverOptions, clientOptions);
  created.onDidChangeState((event) => {
    const running = event.newState === State.Running;
    void vscode.commands.executeCommand("setContext", "flashcode.running", running);
    if (event.newState === State.Stopped) {
      showStatus(stoppedStatus("See the flashcode output channel."));
    }
  });
  return created;
}

async function startClient(): Promise<void> {
  client = createClient();
  // Registered before start: the server sends its first status while it loads the model.
  client.onNotification("flashcode/status", (params: unknown) => {
    if (isStatusParams(params)) {
      showStatus(formatStatus(params));
    } else {
      log.warn(`unexpected flashcode/status payload: ${JSON.stringify(params)}`);
    }
  });
  try {
    await client.start();
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    log.error(`the server did not start: ${message}`);
    showStatus(stoppedStatus(message));
    void vscode.window
      .showErrorMessage(
        `flashcode: the language server did not start (${message}). Set "flashcode.pythonPath" or "flashcode.serverCommand".`,
        "Open Settings",
      )
      .then((choice) => {
        if (choice) {
          void vscode.commands.executeCommand("workbench.action.openSettings", "flashcode.");
        }
      });
  }
}

async function pushSettings(): Promise<void> {
  if (!client || client.state !== State.Running) {
    return;
  }
  const settings = serverSettings(sectionObject(vscode.workspace.getConfiguration(SECTION)));
  await client.sendNotification(DidChangeConfigurationNotification.type, { settings: { [SECTION]: settings } });
}

async function stopClient(): Promise<void> {
  const running = client;
  client = undefined;
  if (running && running.state !== State.Stopped) {
    await running.stop();
  }
  if (running) {
    await running.dispose();
  }
}

async function restartServer(): Promise<void> {
  showStatus(startingStatus());
  await stopClient();
  await startClient();
}

/** Sends flashcode/cursor once the cursor of `editor` has rested for CURSOR_REST_MS. */
function cursorRested(editor: vscode.TextEditor | undefined): void {
  clearTimeout(cursorTimer);
  if (!editor) {
    return;
  }
  cursorTimer = setTimeout(() => {
    const lc = client;
    if (!lc || lc.state !== State.Running || vscode.window.activeTextEditor !== editor) {
      return;
    }
    void lc.sendNotification("flashcode/cursor", {
      textDocument: { uri: lc.code2ProtocolConverter.asUri(editor.document.uri) },
      position: lc.code2ProtocolConverter.asPosition(editor.selection.active),
    });
  }, CURSOR_REST_MS);
}

function showStatus(view: StatusView): void {
  statusItem.text = view.text;
  statusItem.tooltip = new vscode.MarkdownString(view.tooltip, true);
  statusItem.backgroundColor = view.background ? new vscode.ThemeColor(view.background) : undefined;
}

function runningClient(): LanguageClient | undefined {
  if (!client || client.state !== State.Running) {
    void vscode.window.showWarningMessage("flashcode: the language server is not running.");
    return undefined;
  }
  return client;
}

async function generateUnitTests(): Promise<void> {
  const editor = vscode.window.activeTextEditor;
  const lc = runningClient();
  if (!editor || !lc) {
    return;
  }
  const uri = lc.code2ProtocolConverter.asUri(editor.document.uri);
  const position = lc.code2ProtocolConverter.asPosition(editor.selection.active);
  // The server reports $/progress and writes the file itself (workspace/applyEdit); the file it wrote
  // is opened beside the code.
  const result: unknown = await lc.sendRequest(ExecuteCommandRequest.type, {
    command: SERVER_GENERATE_TESTS,
    arguments: [uri, position],
  });
  const target = writtenTestFile(result);
  if (target) {
    const document = await vscode.workspace.openTextDocument(target);
    await vscode.window.showTextDocument(document, { viewColumn: vscode.ViewColumn.Beside, preview: false });
  }
}

/** The test file the command wrote: its result is {written, testFile: a file URI, message, ...}. */
function writtenTestFile(result: unknown): vscode.Uri | undefined {
  if (typeof result !== "object" || result === null) {
    return undefined;
  }
  const { written, testFile } = result as Record<string, unknown>;
  return written === true && typeof testFile === "string" && testFile !== "" ? vscode.Uri.parse(testFile) : undefined;
}

async function showStats(): Promise<void> {
  const lc = runningClient();
  if (!lc) {
    return;
  }
  const stats: unknown = await lc.sendRequest("flashcode/stats");
  const document = await vscode.workspace.openTextDocument({
    language: "json",
    content: JSON.stringify(stats, null, 2),
  });
  await vscode.window.showTextDocument(document, { preview: true });
}

/** WorkspaceConfiguration as a plain object of its top-level keys. */
function sectionObject(section: vscode.WorkspaceConfiguration): Record<string, unknown> {
  return JSON.parse(JSON.stringify(section)) as Record<string, unknown>;
}
