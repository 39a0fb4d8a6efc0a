// Browser tests of the web console (/ui): the real daemon binary, Debian's chromium driven
// by Playwright, axe-core on every page, a screenshot of every page (CRONHOOK_UI_SHOTS, by
// default tests/ui/screenshots). Run by scripts/ui-tests.sh.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, mkdirSync, writeFileSync, readFileSync, rmSync } from "node:fs";
import { createServer } from "node:http";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { createRequire } from "node:module";
import { chromium } from "playwright-core";

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, "..", "..");
const binary = process.env.CRONHOOK_BIN || join(root, "target", "debug", "cronhook");
const shots = process.env.CRONHOOK_UI_SHOTS || join(here, "screenshots");
const axeSource = readFileSync(createRequire(import.meta.url).resolve("axe-core/axe.min.js"), "utf8");
mkdirSync(shots, { recursive: true });

const KEYS = {
  ops: "ops-key-0123456789abcdef",
  alice: "alice-key-0123456789abcdef",
  bob: "bob-key-0123456789abcdef",
};

// ---------------------------------------------------------------- helpers

function freePort() {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/** A webhook receiver on loopback: answers 204, or 500 while `failing`. */
async function startReceiver() {
  const state = { failing: true, seen: 0 };
  const server = createServer((req, res) => {
    req.resume();
    req.on("end", () => {
      state.seen += 1;
      const fail = req.url.startsWith("/flaky") && state.failing;
      res.writeHead(fail ? 500 : 204);
      res.end(fail ? "receiver down" : undefined);
    });
  });
  const port = await new Promise((resolve) =>
    server.listen(0, "127.0.0.1", () => resolve(server.address().port)),
  );
  return { state, url: (path) => `http://127.0.0.1:${port}${path}`, close: () => server.close() };
}

/** The daemon binary on a fresh SQLite directory, with `extra` config appended. */
async function startDaemon(extra = "") {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), "cronhook-ui-"));
  const config = join(dir, "cronhook.toml");
  writeFileSync(
    config,
    `[server]
bind = "127.0.0.1:${port}"
data_dir = "${join(dir, "data")}"
[webhooks.url]
disable_loopback = false
[webhooks.retry]
delays = []
${extra}`,
  );
  const child = spawn(binary, ["--config", config, "serve"], {
    stdio: ["ignore", "ignore", "pipe"],
    env: { ...process.env, RUST_LOG: "warn" },
  });
  let stderr = "";
  child.stderr.on("data", (d) => (stderr += d));
  const base = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 200; i++) {
    try {
      const r = await fetch(`${base}/ok`);
      if (r.ok) break;
    } catch {}
    if (child.exitCode !== null) throw new Error(`daemon exited: ${stderr}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    base,
    async api(method, path, body, key) {
      const headers = { "content-type": "application/json" };
      if (key) headers["x-api-key"] = key;
      const r = await fetch(base + path, { method, headers, body: body && JSON.stringify(body) });
      const text = await r.text();
      return { status: r.status, body: text ? JSON.parse(text) : null };
    },
    stop() {
      child.kill("SIGTERM");
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** axe-core on the page: no serious or critical violation. */
async function axe(page, name) {
  // Evaluated over the DevTools protocol: the console's CSP refuses inline scripts.
  await page.evaluate(axeSource);
  const result = await page.evaluate(async () => await window.axe.run(document));
  const bad = result.violations.filter((v) => ["serious", "critical"].includes(v.impact));
  assert.deepEqual(
    bad.map((v) => `${v.id}: ${v.help} (${v.nodes.map((n) => n.target.join(" ")).join("; ")})`),
    [],
    `axe on ${name}`,
  );
}

/** Screenshot and axe, for every page the tests see. */
async function look(page, name) {
  await page.screenshot({ path: join(shots, `${name}.png`), fullPage: true });
  await axe(page, name);
}

// ---------------------------------------------------------------- set-up

let browser, open, keyed, receiver;

before(async () => {
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: [
      "--no-sandbox",
      "--headless",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
  receiver = await startReceiver();
  open = await startDaemon();
  keyed = await startDaemon(`
[[auth.api_keys]]
identity = "ops"
key = "${KEYS.ops}"
admin = true
[[auth.api_keys]]
identity = "alice"
key = "${KEYS.alice}"
[[auth.api_keys]]
identity = "bob"
key = "${KEYS.bob}"
`);
});

after(async () => {
  await browser?.close();
  open?.stop();
  keyed?.stop();
  receiver?.close();
});

async function newPage(options = {}) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, ...options });
  const page = await context.newPage();
  page.setDefaultTimeout(10_000);
  return { context, page };
}

// ---------------------------------------------------------------- an open daemon

test("a cron's life through the console: create with preview, live history, pause, resume, trigger, edit, delete", async () => {
  const { context, page } = await newPage();
  await page.goto(`${open.base}/ui/`);
  await assert.doesNotReject(page.getByRole("heading", { name: "Overview" }).waitFor());
  await look(page, "overview-empty");

  await page.getByRole("link", { name: "Crons", exact: true }).click();
  await page.getByRole("link", { name: "New cron" }).click();
  await page.getByLabel("Assistant").selectOption("agent");

  // A bad schedule: the preview says so while typing, and the API's detail sits beside the field.
  await page.getByLabel("Schedule").fill("61 * * * *");
  await page.locator("#schedule-preview .error").waitFor();
  await page.getByRole("button", { name: "Create cron" }).click();
  const fieldError = page.locator("#schedule-error");
  await fieldError.waitFor();
  assert.match(await fieldError.innerText(), /Invalid cron schedule: '61 \* \* \* \*'/);
  assert.equal(await page.getByLabel("Schedule").inputValue(), "61 * * * *", "the form keeps what was typed");
  await look(page, "cron-form-error");

  // The preview: words and the next 5 instants, from the daemon's parser.
  await page.getByLabel("Schedule").fill("* * * * * *");
  await page.getByLabel("Timezone").fill("Europe/Paris");
  await page.locator("#schedule-preview").getByText("every second, Europe/Paris").waitFor();
  assert.equal(await page.locator("#schedule-preview ol li").count(), 5);
  await page.getByLabel("Input").fill('{"messages": [{"role": "user", "content": "ping"}]}');
  await page.getByLabel("Metadata").fill('{"team": "ops", "tier": "gold"}');
  await page.getByLabel("Webhook URL").fill(receiver.url("/hook"));
  await look(page, "cron-form-preview");
  await page.getByRole("button", { name: "Create cron" }).click();
  await page.getByText("Cron created.").waitFor();
  const cronId = page.url().match(/\/ui\/crons\/([0-9a-f-]{36})/)[1];
  const created = await open.api("GET", `/runs/crons/${cronId}`);
  assert.equal(created.body.schedule, "* * * * * *");
  assert.equal(created.body.timezone, "Europe/Paris");
  assert.deepEqual(created.body.metadata, { team: "ops", tier: "gold" });

  // History fills live: rows arrive without a reload.
  await page.evaluate(() => (window.__sameDocument = true));
  const rows = page.locator("#history tbody tr");
  const before = await rows.count();
  await page.waitForFunction((n) => document.querySelectorAll("#history tbody tr").length >= n + 3, before, {
    timeout: 15_000,
  });
  assert.equal(await page.evaluate(() => window.__sameDocument), true, "updated in place, not reloaded");
  assert.equal(await page.locator("#next-instants li").count(), 10);
  await look(page, "cron");

  // Pause with a note, then resume.
  await page.getByLabel("Pause note").fill("maintenance window");
  await page.getByRole("button", { name: "Pause" }).click();
  await page.getByText("Cron paused.").waitFor();
  await page.locator("#pause-note-text", { hasText: "maintenance window" }).waitFor();
  let cron = (await open.api("GET", `/runs/crons/${cronId}`)).body;
  assert.equal(cron.enabled, false);
  assert.equal(cron.pause_note, "maintenance window");
  await look(page, "cron-paused");
  await page.getByRole("button", { name: "Resume" }).click();
  await page.getByText("Cron resumed.").waitFor();
  cron = (await open.api("GET", `/runs/crons/${cronId}`)).body;
  assert.equal(cron.enabled, true);
  assert.equal(cron.pause_note, null);

  // Trigger now: a run outside the schedule, in the history as "triggered".
  await page.getByRole("button", { name: "Trigger now" }).click();
  await page.getByText("Run queued.").waitFor();
  const history = await open.api("GET", `/runs/crons/${cronId}/history?fire=triggered`);
  assert.equal(history.body.length, 1);
  await page.locator("#history tbody tr", { hasText: "triggered" }).first().waitFor();

  // Edit: the form comes filled in; Save changes the schedule.
  await page.getByRole("button", { name: "Edit" }).click();
  assert.equal(await page.getByLabel("Schedule").inputValue(), "* * * * * *");
  await page.getByLabel("Schedule").fill("0 9 * * 1-5");
  await page.locator("#schedule-preview").getByText("at 09:00, Monday to Friday, Europe/Paris").waitFor();
  await look(page, "cron-edit");
  await page.getByRole("button", { name: "Save" }).click();
  await page.getByText("Changes saved.").waitFor();
  await page.getByText("at 09:00, Monday to Friday, Europe/Paris").first().waitFor();
  assert.equal((await open.api("GET", `/runs/crons/${cronId}`)).body.schedule, "0 9 * * 1-5");

  // The list: words beside the expression, tags, search and filters.
  await page.goto(`${open.base}/ui/crons?q=gold`);
  await page.getByRole("link", { name: cronId.slice(-8) }).waitFor();
  await page.getByText("tier=gold").waitFor();
  await look(page, "crons");
  await page.goto(`${open.base}/ui/crons?q=no-such-thing`);
  await page.getByText("No cron matches.").waitFor();
  await page.goto(`${open.base}/ui/crons?status=paused`);
  await page.getByText("No cron matches.").waitFor();

  await page.goto(`${open.base}/ui`);
  await page.getByText("runs fired").waitFor();
  assert.notEqual(await page.locator(".card .n").nth(5).innerText(), "0", "the last hour's fires are counted");
  await look(page, "overview");

  // Delete, after a confirmation that names the cron.
  await page.goto(`${open.base}/ui/crons/${cronId}`);
  let asked = "";
  page.once("dialog", (dialog) => {
    asked = dialog.message();
    dialog.accept();
  });
  await page.getByRole("button", { name: "Delete" }).click();
  await page.getByText("Cron deleted.").waitFor();
  assert.match(asked, new RegExp(`Delete cron ${cronId.slice(-8)}`));
  assert.equal((await open.api("GET", `/runs/crons/${cronId}`)).status, 404);
  await context.close();
});

test("a failed delivery is retried from the deliveries page", async () => {
  const { context, page } = await newPage();
  receiver.state.failing = true;
  const cron = await open.api("POST", "/runs/crons", {
    assistant_id: "agent",
    schedule: "0 0 1 1 *",
    input: { x: 1 },
    webhook: receiver.url("/flaky"),
  });
  assert.equal(cron.status, 200);
  await open.api("POST", `/runs/crons/${cron.body.cron_id}/trigger`);
  let failed = [];
  for (let i = 0; i < 100 && failed.length === 0; i++) {
    failed = (await open.api("GET", `/webhooks/deliveries?status=failed&cron_id=${cron.body.cron_id}`)).body;
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.equal(failed.length, 1, "the delivery failed (no retries configured)");

  await page.goto(`${open.base}/ui/deliveries?status=failed`);
  const row = page.locator("tr", { hasText: failed[0].delivery_id.slice(-8) });
  await row.getByRole("cell", { name: /^HTTP 500/ }).waitFor();
  await look(page, "deliveries");
  receiver.state.failing = false;
  await row.getByRole("button", { name: "Retry" }).click();
  await page.getByText("Delivery queued again.").waitFor();
  let status = "";
  for (let i = 0; i < 100 && status !== "delivered"; i++) {
    status = (await open.api("GET", `/webhooks/deliveries/${failed[0].delivery_id}`)).body.status;
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.equal(status, "delivered");
  await page.goto(`${open.base}/ui/deliveries`);
  await page.locator("tr", { hasText: failed[0].delivery_id.slice(-8) }).getByText("delivered").waitFor();
  await context.close();
});

test("narrow and dark: the pages stay usable on a phone at night", async () => {
  const { context, page } = await newPage({ viewport: { width: 390, height: 844 }, colorScheme: "dark" });
  const cron = await open.api("POST", "/runs/crons", {
    assistant_id: "agent",
    schedule: "*/5 * * * * *",
    input: { x: 1 },
    metadata: { team: "night" },
  });
  await page.goto(`${open.base}/ui/crons`);
  const width = await page.evaluate(() => document.documentElement.scrollWidth);
  assert.ok(width <= 400, `no sideways scrolling of the page (${width}px)`);
  const background = await page.evaluate(() => getComputedStyle(document.body).backgroundColor);
  assert.equal(background, "rgb(13, 17, 23)", "dark colours");
  await look(page, "crons-narrow-dark");
  await page.goto(`${open.base}/ui/crons/${cron.body.cron_id}`);
  await look(page, "cron-narrow-dark");
  await page.goto(`${open.base}/ui/crons/new`);
  await look(page, "cron-form-narrow-dark");
  // Keyboard only: Tab reaches the Pause button from the top of the cron page.
  await page.goto(`${open.base}/ui/crons/${cron.body.cron_id}`);
  let reached = false;
  for (let i = 0; i < 20 && !reached; i++) {
    await page.keyboard.press("Tab");
    reached = await page.evaluate(() => document.activeElement?.textContent === "Pause");
  }
  assert.ok(reached, "Pause is reachable with the keyboard");
  await page.keyboard.press("Enter");
  await page.getByText("Cron paused.").waitFor();
  await context.close();
});

// ---------------------------------------------------------------- a daemon with API keys

test("with keys: log in, wrong key refused, own crons only, log out", async () => {
  const mine = await keyed.api("POST", "/runs/crons", { assistant_id: "agent", schedule: "0 9 * * *", input: {}, metadata: { owner: "alice" } }, KEYS.alice);
  const theirs = await keyed.api("POST", "/runs/crons", { assistant_id: "agent", schedule: "0 10 * * *", input: {}, metadata: { owner: "bob" } }, KEYS.bob);
  assert.equal(mine.status, 200);
  assert.equal(theirs.status, 200);

  const { context, page } = await newPage();
  await page.goto(`${keyed.base}/ui/crons`);
  assert.match(page.url(), /\/ui\/login\?next=%2Fui%2Fcrons$/);
  await look(page, "login");

  await page.getByLabel("API key").fill("not-a-key-0123456789abcdef");
  await page.getByRole("button", { name: "Log in" }).click();
  const alert = page.getByRole("alert");
  await alert.waitFor();
  assert.equal(await alert.innerText(), "That API key is not valid.");
  assert.deepEqual((await context.cookies()).map((c) => c.name), [], "no cookie for a wrong key");
  await look(page, "login-refused");

  await page.getByLabel("API key").fill(KEYS.alice);
  await page.getByRole("button", { name: "Log in" }).click();
  await page.waitForURL(/\/ui\/crons$/);
  const [cookie] = await context.cookies();
  assert.equal(cookie.httpOnly, true);
  assert.equal(cookie.sameSite, "Strict");
  assert.equal(cookie.path, "/ui");
  assert.ok(!cookie.value.includes(KEYS.alice), "the cookie is not the key");
  assert.equal(await page.evaluate(() => document.cookie), "", "nothing script-readable");
  const storage = await page.evaluate(() => JSON.stringify({ ...localStorage, ...sessionStorage }));
  assert.ok(!storage.includes(KEYS.alice));

  await page.getByRole("link", { name: mine.body.cron_id.slice(-8) }).waitFor();
  assert.equal(await page.getByRole("link", { name: theirs.body.cron_id.slice(-8) }).count(), 0);
  await look(page, "crons-as-alice");
  const other = await page.goto(`${keyed.base}/ui/crons/${theirs.body.cron_id}`);
  assert.equal(other.status(), 404, "another identity's cron is not found");
  // A change to another identity's cron is refused like the API refuses it.
  await page.goto(`${keyed.base}/ui/crons/${mine.body.cron_id}`);
  const csrf = await page.locator('input[name="csrf"]').first().inputValue();
  const forged = await page.evaluate(
    async ([id, token]) =>
      (await fetch(`/ui/crons/${id}/pause`, { method: "POST", headers: { "content-type": "application/x-www-form-urlencoded" }, body: `csrf=${token}` })).status,
    [theirs.body.cron_id, csrf],
  );
  assert.equal(forged, 404);
  assert.equal((await keyed.api("GET", `/runs/crons/${theirs.body.cron_id}`, null, KEYS.bob)).body.enabled, true);
  // Without the CSRF token, nothing changes.
  const noToken = await page.evaluate(
    async (id) => (await fetch(`/ui/crons/${id}/pause`, { method: "POST", headers: { "content-type": "application/x-www-form-urlencoded" }, body: "note=x" })).status,
    mine.body.cron_id,
  );
  assert.equal(noToken, 403);
  assert.equal((await keyed.api("GET", `/runs/crons/${mine.body.cron_id}`, null, KEYS.alice)).body.enabled, true);

  await page.getByRole("button", { name: "Log out" }).click();
  await page.waitForURL(/\/ui\/login$/);
  await page.goto(`${keyed.base}/ui`);
  assert.match(page.url(), /\/ui\/login/, "the login ended");

  // The admin sees everyone's crons.
  await page.getByLabel("API key").fill(KEYS.ops);
  await page.getByRole("button", { name: "Log in" }).click();
  await page.goto(`${keyed.base}/ui/crons`);
  await page.getByRole("link", { name: theirs.body.cron_id.slice(-8) }).waitFor();
  await page.getByRole("link", { name: mine.body.cron_id.slice(-8) }).waitFor();
  await context.close();
});

test("with keys: Swagger UI and the document load without a key, the API still wants one", async () => {
  const { context, page } = await newPage();
  for (const path of ["/docs", "/docs/"]) {
    const response = await page.goto(`${keyed.base}${path}`);
    assert.equal(response.status(), 200, path);
  }
  await page.locator(".swagger-ui .info .title").waitFor();
  await page.getByRole("button", { name: /Authorize/ }).waitFor();
  await page.screenshot({ path: join(shots, "docs.png") });
  assert.equal((await fetch(`${keyed.base}/openapi.json`)).status, 200);
  assert.equal((await fetch(`${keyed.base}/runs/crons/search`, { method: "POST", body: "{}" })).status, 401);
  await context.close();
});
