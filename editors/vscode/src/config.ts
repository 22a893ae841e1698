// Pure helpers (no `vscode` import) so that node:test can exercise them without an editor host.

/** Keys of the `flashcode` section that only the extension reads; the server never sees them. */
export const CLIENT_ONLY_KEYS: readonly string[] = ["serverCommand", "pythonPath", "trace"];

export interface ServerCommand {
  command: string;
  args: string[];
}

type Section = Record<string, unknown>;

/**
 * The `flashcode` settings section as the server expects it (initializationOptions and the answer to
 * workspace/configuration): plain JSON, without the client-only keys.
 */
export function serverSettings(section: Section): Section {
  const out: Section = {};
  for (const [key, value] of Object.entries(section)) {
    if (CLIENT_ONLY_KEYS.includes(key) || typeof value === "function") {
      continue;
    }
    out[key] = value;
  }
  // WorkspaceConfiguration objects carry proxies and getters: a JSON round trip leaves only data.
  return JSON.parse(JSON.stringify(out)) as Section;
}

/**
 * How to start the server: an explicit command line wins, then `<python> -m lsp_server`, then the
 * `flashcode` console script from PATH.
 */
export function resolveServerCommand(section: Section): ServerCommand {
  const explicit = section["serverCommand"];
  if (Array.isArray(explicit) && explicit.length > 0 && explicit.every((s) => typeof s === "string")) {
    const [command, ...args] = explicit as string[];
    return { command, args };
  }
  const python = section["pythonPath"];
  if (typeof python === "string" && python.trim() !== "") {
    return { command: python.trim(), args: ["-m", "lsp_server"] };
  }
  return { command: "flashcode", args: ["serve"] };
}

/** True when a change to these settings needs a new server process rather than a reload. */
export function needsRestart(changed: (key: string) => boolean): boolean {
  return changed("flashcode.serverCommand") || changed("flashcode.pythonPath");
}
