/**
 * @module permission_probe
 * Run by `tests/permissions_test.ts` under the gateway's computed permission flags: tries each
 * access named in its arguments and prints one JSON object `{name: "ok" | error name}`.
 *
 *     deno run <flags> tests/permission_probe.ts connect:127.0.0.2:9 read:/etc/hostname env:HOME ...
 */
import net from "node:net";

async function attempt(probe: string): Promise<string> {
  const [kind, ...rest] = probe.split(":");
  const arg = rest.join(":");
  try {
    switch (kind) {
      case "connect": { // Deno.connect host:port
        const i = arg.lastIndexOf(":");
        const conn = await Deno.connect({ hostname: arg.slice(0, i), port: Number(arg.slice(i + 1)) });
        conn.close();
        return "ok";
      }
      case "nodeconnect": // what mysql2 / ioredis / mqtt do
        return await new Promise((resolve) => {
          const i = arg.lastIndexOf(":");
          const socket = net.connect({ host: arg.slice(0, i), port: Number(arg.slice(i + 1)) });
          socket.on("connect", () => {
            socket.destroy();
            resolve("ok");
          });
          socket.on("error", (e: Error & { code?: string }) => resolve(e.code ?? e.name));
        });
      case "fetch":
        await (await fetch(arg)).body?.cancel();
        return "ok";
      case "listen": {
        const listener = Deno.listen({ hostname: "127.0.0.1", port: Number(arg) });
        listener.close();
        return "ok";
      }
      case "read":
        await Deno.readFile(arg);
        return "ok";
      case "write":
        await Deno.writeTextFile(arg, "probe");
        return "ok";
      case "env":
        return Deno.env.get(arg) === undefined ? "unset" : "ok";
      case "run":
        await new Deno.Command(arg).output();
        return "ok";
      case "sys":
        Deno.hostname();
        return "ok";
      default:
        return `unknown probe ${kind}`;
    }
  } catch (error) {
    return (error as Error).name;
  }
}

const results: Record<string, string> = {};
for (const probe of Deno.args) results[probe] = await attempt(probe);
console.log(JSON.stringify(results));
