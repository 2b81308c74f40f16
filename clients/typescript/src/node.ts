/**
 * Node.js only (`import { FileKeyStore } from "killbill-auth-client/node"`): kept apart from the
 * main entry so that a browser bundle never pulls in `node:fs`.
 */
/// <reference types="node" />

import { randomBytes } from "node:crypto";
import { chmod, mkdir, open, readFile, rename, unlink } from "node:fs/promises";
import { dirname } from "node:path";

import type { KeyStore } from "./keystore.js";

function isNotFound(e: unknown): boolean {
  return typeof e === "object" && e !== null && (e as { code?: unknown }).code === "ENOENT";
}

/**
 * Keeps the key in a file readable and writable by its owner only (mode 0600; its folder, when
 * the store makes it, 0700). A new key is written to a fresh 0600 file beside it and renamed over
 * the old one, so the file is never seen half-written or with wider permissions, whatever the
 * umask. (On Windows, where modes do not apply, protect the folder instead.)
 */
export class FileKeyStore implements KeyStore {
  /** The file's path. */
  readonly path: string;

  constructor(path: string) {
    if (typeof path !== "string" || path.length === 0) throw new TypeError("FileKeyStore needs a file path");
    this.path = path;
  }

  async get(): Promise<string | null> {
    let text: string;
    try {
      text = await readFile(this.path, "utf8");
    } catch (e) {
      if (isNotFound(e)) return null;
      throw e;
    }
    const key = text.trim();
    return key.length === 0 ? null : key;
  }

  async set(key: string): Promise<void> {
    await mkdir(dirname(this.path), { recursive: true, mode: 0o700 });
    const temporary = `${this.path}.${randomBytes(6).toString("hex")}.tmp`;
    const file = await open(temporary, "wx", 0o600);
    try {
      // The mode of open() is reduced by the umask, never widened; make it exact.
      await file.chmod(0o600);
      await file.writeFile(`${key}\n`, "utf8");
      await file.sync();
    } catch (e) {
      await file.close().catch(() => undefined);
      await unlink(temporary).catch(() => undefined);
      throw e;
    }
    await file.close();
    try {
      await rename(temporary, this.path);
    } catch (e) {
      await unlink(temporary).catch(() => undefined);
      throw e;
    }
    await chmod(this.path, 0o600);
  }

  async clear(): Promise<void> {
    try {
      await unlink(this.path);
    } catch (e) {
      if (!isNotFound(e)) throw e;
    }
  }
}
