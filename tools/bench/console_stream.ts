/**
 * @module console_stream
 * `deno task bench --console`: an operator with the console open while the scenarios run. A process of
 * its own (as a browser would be) signs in to the gateway's console and reads its live event stream
 * (`/console/events`) until closed, so the uplink and downlink figures can be compared with a run
 * without it. Read from the benchmark's own process, the stream shared that event loop with the
 * scenarios' polling and cost the burst 3-20 % that a `curl -N` reader did not: a figure of the
 * harness, not of the gateway.
 *
 * Run as a program (`deno run --allow-net console_stream.ts URL TOKEN`) it is that reader: it prints
 * `ready` once streaming and, when its standard input closes, `{"batches":…,"bytes":…}` and exits.
 */

export interface ConsoleStream {
  /** Stops reading; how many batches and bytes the stream delivered. */
  close(): Promise<{ batches: number; bytes: number }>;
}

/** Starts the reader process and waits until it streams. */
export async function openConsoleStream(baseUrl: string, apiToken: string): Promise<ConsoleStream> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-net", new URL(import.meta.url).pathname, baseUrl, apiToken],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const lines = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  const nextLine = async (): Promise<string | null> => {
    for (;;) {
      const nl = text.indexOf("\n");
      if (nl >= 0) {
        const line = text.slice(0, nl);
        text = text.slice(nl + 1);
        return line;
      }
      const { value, done } = await lines.read();
      if (done) return null;
      text += value;
    }
  };
  const stdin = child.stdin.getWriter();
  const first = await nextLine();
  if (first !== "ready") {
    await stdin.close().catch(() => {});
    const status = await child.status;
    const err = await new Response(child.stderr).text();
    throw new Error(`console reader did not start (exit ${status.code}): ${first ?? ""} ${err.slice(-500)}`);
  }
  const stderr = new Response(child.stderr).text();
  return {
    async close() {
      await stdin.close().catch(() => {});
      const last = await nextLine();
      lines.releaseLock();
      await child.stdout.cancel().catch(() => {});
      await child.status;
      await stderr;
      return last ? JSON.parse(last) : { batches: 0, bytes: 0 };
    },
  };
}

async function read(baseUrl: string, apiToken: string): Promise<void> {
  const signIn = await fetch(`${baseUrl}/console/sign-in`, {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams({ token: apiToken }),
    redirect: "manual",
  });
  await signIn.body?.cancel();
  const cookie = signIn.headers.get("set-cookie")?.split(";")[0];
  if (signIn.status !== 303 || !cookie) throw new Error(`console sign-in failed: ${signIn.status}`);
  const controller = new AbortController();
  const res = await fetch(`${baseUrl}/console/events`, { headers: { cookie }, signal: controller.signal });
  if (res.status !== 200 || !res.body) throw new Error(`console stream: ${res.status}`);
  let batches = 0, bytes = 0;
  const decoder = new TextDecoder();
  const reading = (async () => {
    try {
      for await (const chunk of res.body!) {
        bytes += chunk.length;
        batches += decoder.decode(chunk, { stream: true }).split("event: batch").length - 1;
      }
    } catch {
      // aborted below
    }
  })();
  console.log("ready");
  // Until the benchmark closes our standard input.
  for await (const _ of Deno.stdin.readable) { /* nothing is sent */ }
  controller.abort();
  await reading;
  console.log(JSON.stringify({ batches, bytes }));
}

if (import.meta.main) {
  const [baseUrl, apiToken] = Deno.args;
  if (!baseUrl || !apiToken) {
    console.error("usage: console_stream.ts BASE_URL API_TOKEN");
    Deno.exit(2);
  }
  await read(baseUrl, apiToken);
}
