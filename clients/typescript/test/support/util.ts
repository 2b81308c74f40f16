import { randomBytes } from "node:crypto";

let counter = 0;

/** A fresh valid username (3 to 20 of A-Z a-z 0-9 _). */
export function username(prefix = "p"): string {
  counter += 1;
  return `${prefix}_${counter}_${randomBytes(4).toString("hex")}`.slice(0, 20);
}

/** A password the service accepts (long enough, not a common one). */
export function password(): string {
  return `lantern ${randomBytes(6).toString("hex")} orchard`;
}

/** Polls `check` until it is true, or fails after `ms`. */
export async function eventually(check: () => boolean, ms = 5000, what = "condition"): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
