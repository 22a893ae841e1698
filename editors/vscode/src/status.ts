// The `flashcode/status` notification (server → client) turned into status bar text. Pure: no `vscode`.

export type ServerState = "loading" | "ready" | "error";

export interface StatusParams {
  state: ServerState;
  model: string;
  device: string;
  message?: string;
  lastLatencyMs?: number;
}

export interface StatusView {
  /** Status bar text; `$(name)` are codicons. */
  text: string;
  /** Markdown tooltip. */
  tooltip: string;
  /** Theme color id for the background, or undefined for the default. */
  background?: "statusBarItem.errorBackground";
}

const ICONS: Record<ServerState, string> = {
  loading: "$(loading~spin)",
  ready: "$(zap)",
  error: "$(error)",
};

export function isStatusParams(value: unknown): value is StatusParams {
  if (typeof value !== "object" || value === null) {
    return false;
  }
  const v = value as Record<string, unknown>;
  return typeof v["state"] === "string" && v["state"] in ICONS;
}

export function formatStatus(status: StatusParams): StatusView {
  let text = `${ICONS[status.state]} flashcode`;
  if (status.state === "ready" && typeof status.lastLatencyMs === "number") {
    text += ` ${Math.round(status.lastLatencyMs)} ms`;
  } else if (status.state !== "ready") {
    text += ` ${status.state}`;
  }
  const lines = [
    `**flashcode** — ${status.state}`,
    "",
    `model: \`${status.model || "?"}\``,
    "",
    `device: \`${status.device || "?"}\``,
  ];
  if (typeof status.lastLatencyMs === "number") {
    lines.push("", `last completion: ${status.lastLatencyMs.toFixed(0)} ms`);
  }
  if (status.message) {
    lines.push("", status.message);
  }
  const view: StatusView = { text, tooltip: lines.join("\n") };
  if (status.state === "error") {
    view.background = "statusBarItem.errorBackground";
  }
  return view;
}

/** Shown before the server has said anything and after it stopped. */
export function startingStatus(): StatusView {
  return { text: "$(loading~spin) flashcode starting", tooltip: "**flashcode** — starting the server" };
}

export function stoppedStatus(reason: string): StatusView {
  return {
    text: "$(debug-disconnect) flashcode stopped",
    tooltip: `**flashcode** — the server is not running\n\n${reason}`,
    background: "statusBarItem.errorBackground",
  };
}
