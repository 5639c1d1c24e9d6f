// Runs client.js in headless Chromium (Debian's /usr/bin/chromium through
// playwright-core) and turns the page's console into a result:
//   node runner.mjs PAGE_URL [PAUSE_SECONDS]
// prints the page's log lines, goes offline for PAUSE_SECONDS when the page
// says PAUSE, and exits 0 on DONE, 1 on FAIL or timeout.
import { chromium } from "playwright-core";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const [pageURL, pauseArg] = process.argv.slice(2);
const pauseSeconds = Number(pauseArg || "6");
const executablePath = process.env.CHROMIUM || "/usr/bin/chromium";
const profile = mkdtempSync(join(tmpdir(), "jabberd-chromium-"));
const args = [
  "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync",
  // --user-data-dir=<profile>: playwright passes it from launchPersistentContext's first argument
];

let context;
let status = 1;
const deadline = setTimeout(() => finish("FAIL: timeout"), 150000);

async function finish(line) {
  console.log(line);
  status = line === "DONE" ? 0 : 1;
  clearTimeout(deadline);
  try { if (context) await context.close(); } catch (e) { /* already gone */ }
  rmSync(profile, { recursive: true, force: true });
  process.exit(status);
}

try {
  context = await chromium.launchPersistentContext(profile, { executablePath, headless: true, args, ignoreHTTPSErrors: true });
  const page = context.pages()[0] || (await context.newPage());
  page.on("console", async (message) => {
    const text = message.text();
    if (text === "DONE" || text.startsWith("FAIL")) {
      await finish(text);
    } else if (text === "PAUSE") {
      console.log("PAUSE");
      await context.setOffline(true);
      console.log(`offline for ${pauseSeconds} s`);
      setTimeout(async () => {
        await context.setOffline(false);
        console.log("ONLINE");
      }, pauseSeconds * 1000);
    } else {
      console.log("page: " + text);
    }
  });
  page.on("pageerror", (error) => finish("FAIL: page error " + error.message));
  await page.goto(pageURL);
} catch (error) {
  await finish("FAIL: " + error.message);
}
