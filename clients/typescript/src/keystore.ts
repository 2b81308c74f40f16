/**
 * Where the player's access key is kept between calls (and, if the game wants, between
 * launches). The game supplies the store; the client reads it once, then writes every change
 * through it. A store never logs or shows the key.
 */

/** A place for one access key. Each method may answer at once or with a promise. */
export interface KeyStore {
  /** The stored key, or null (or undefined) when there is none. */
  get(): string | null | undefined | Promise<string | null | undefined>;
  /** Keeps `key`, replacing any other. */
  set(key: string): void | Promise<void>;
  /** Forgets the key. */
  clear(): void | Promise<void>;
}

/**
 * Keeps the key in memory only: gone when the page or the game closes, the safest choice for a
 * browser game (nothing for another script or a later user of the device to find).
 */
export class MemoryKeyStore implements KeyStore {
  private key: string | null = null;

  get(): string | null {
    return this.key;
  }

  set(key: string): void {
    this.key = key;
  }

  clear(): void {
    this.key = null;
  }

  /** Never shows the key (e.g. in `console.log(store)` or `JSON.stringify`). */
  toJSON(): string {
    return this.key === null ? "MemoryKeyStore(empty)" : "MemoryKeyStore(key hidden)";
  }
}

/** What {@link WebStorageKeyStore} needs: `sessionStorage`, `localStorage`, Cocos Creator's `sys.localStorage`. */
export interface StorageLike {
  getItem(name: string): string | null;
  setItem(name: string, value: string): void;
  removeItem(name: string): void;
}

/**
 * Keeps the key in a Web Storage-like object so that a player stays signed in across reloads
 * (`sessionStorage`) or launches (`localStorage`, Cocos Creator's `sys.localStorage`). Anything
 * that runs on the page can read such storage: prefer {@link MemoryKeyStore} or `sessionStorage`
 * where the game allows it.
 */
export class WebStorageKeyStore implements KeyStore {
  constructor(
    private readonly storage: StorageLike,
    private readonly name: string = "killbill-auth.key",
  ) {}

  get(): string | null {
    const value = this.storage.getItem(this.name);
    return value === null || value === "" ? null : value;
  }

  set(key: string): void {
    this.storage.setItem(this.name, key);
  }

  clear(): void {
    this.storage.removeItem(this.name);
  }
}
