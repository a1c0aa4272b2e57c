/**
 * @module console_stream
 * `deno task bench --console`: an operator with the console open while the scenarios run. Signs in to
 * the gateway's console and reads its live event stream (`/console/events`) until closed, so the
 * uplink and downlink figures can be compared with a run without it.
 */

export interface ConsoleStream {
  /** Stops reading; how many batches and bytes the stream delivered. */
  close(): Promise<{ batches: number; bytes: number }>;
}

export async function openConsoleStream(baseUrl: string, apiToken: string): Promise<ConsoleStream> {
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
        batches += decoder.decode(chunk).split("event: batch").length - 1;
      }
    } catch {
      // aborted by close()
    }
  })();
  return {
    async close() {
      controller.abort();
      await reading;
      return { batches, bytes };
    },
  };
}
