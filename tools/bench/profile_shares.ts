/**
 * @module profile_shares
 * Where a V8 CPU profile's time went, by source file: each file's share of the samples in which one
 * of its functions is on the stack (inclusive, so a file that calls the store counts the store's
 * synchronous work too), and the shares of V8's own idle, program and garbage-collector nodes.
 * npm files are grouped per package (`npm:hono@4.13.19`), the project's by path (`app/gateway.ts`).
 */

/** The parts of a `.cpuprofile` (Chrome DevTools' format, from `Profiler.stop`) read here. */
export interface CpuProfile {
  nodes: { id: number; callFrame: { functionName: string; url: string }; children?: number[] }[];
  samples: number[];
}

export interface ProfileShares {
  samples: number;
  /** Percent of all samples: `(idle)`, `(program)`, `(garbage collector)`. */
  runtime: Record<string, number>;
  /** Percent of all samples per file or package, largest first. */
  files: { file: string; percent: number }[];
}

const RUNTIME = new Set(["(idle)", "(program)", "(garbage collector)", "(root)"]);

export function profileShares(profile: CpuProfile, root: string): ProfileShares {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const perNode = new Map<number, number>();
  for (const id of profile.samples) perNode.set(id, (perNode.get(id) ?? 0) + 1);
  const total = profile.samples.length;
  const runtime: Record<string, number> = {};
  const files = new Map<string, number>();
  for (const [id, count] of perNode) {
    const name = byId.get(id)?.callFrame.functionName ?? "";
    if (RUNTIME.has(name)) {
      runtime[name] = (runtime[name] ?? 0) + count;
      continue;
    }
    const seen = new Set<string>();
    for (let at: number | undefined = id; at !== undefined; at = parent.get(at)) {
      const file = fileOf(byId.get(at)?.callFrame.url ?? "", root);
      if (file) seen.add(file);
    }
    for (const file of seen) files.set(file, (files.get(file) ?? 0) + count);
  }
  const percent = (n: number) => total === 0 ? 0 : (100 * n) / total;
  return {
    samples: total,
    runtime: Object.fromEntries(Object.entries(runtime).map(([k, v]) => [k, percent(v)])),
    files: [...files].map(([file, n]) => ({ file, percent: percent(n) })).sort((a, b) =>
      b.percent - a.percent
    ),
  };
}

function fileOf(url: string, root: string): string {
  if (!url) return "";
  const npm = /node_modules\/\.deno\/([^/]+)\//.exec(url);
  if (npm) return `npm:${npm[1]}`;
  const prefix = `file://${root.endsWith("/") ? root : `${root}/`}`;
  return url.startsWith(prefix) ? url.slice(prefix.length) : url;
}
