// The account page (GET /account): plain JavaScript, no dependencies, loaded from this origin only
// (the Content-Security-Policy allows no inline script and no HTML sinks: everything the API says
// is written with textContent). It talks to the service's own API with fetch. The key lives in a
// variable and in sessionStorage (which survives a reload of this tab, not a new tab or the
// browser's end); never in localStorage, a cookie or a URL.
"use strict";

(function () {
  const STORAGE = "killbill-auth.key";
  const EVENTS_PAGE = 20;
  const body = document.body;
  const config = {
    anomalyNetworks: body.dataset.anomalyNetworks,
    anomalyWindow: body.dataset.anomalyWindow,
    floodRequests: body.dataset.floodRequests,
    floodWindow: body.dataset.floodWindow,
    keyLifetime: body.dataset.keyLifetime,
    keyLifetimeMs: Number(body.dataset.keyLifetimeMs),
    idleTimeout: body.dataset.idleTimeout,
    maxKeys: body.dataset.maxKeys,
  };

  const state = { key: null, user: null, eventsNext: null };

  const $ = (id) => document.getElementById(id);
  const views = ["view-loading", "view-sign-in", "view-sign-up", "view-reset", "view-suspended", "view-account"];

  // --- The key: memory and sessionStorage only. ---

  function rememberKey(key) {
    state.key = key;
    try {
      sessionStorage.setItem(STORAGE, key);
    } catch (e) {
      // Storage refused (private mode, a policy): the key stays in memory for this page.
    }
  }

  function forgetKey() {
    state.key = null;
    state.user = null;
    try {
      sessionStorage.removeItem(STORAGE);
    } catch (e) {
      // Nothing stored.
    }
  }

  function storedKey() {
    try {
      return sessionStorage.getItem(STORAGE);
    } catch (e) {
      return null;
    }
  }

  // --- Messages: errors in an alert region, news in a status region. ---

  function showError(text) {
    $("notice").textContent = "";
    $("alert").textContent = text;
  }

  function showNotice(text) {
    $("alert").textContent = "";
    $("notice").textContent = text;
  }

  function clearMessages() {
    $("alert").textContent = "";
    $("notice").textContent = "";
  }

  function seconds(n) {
    return n === 1 ? "1 second" : n + " seconds";
  }

  function sentence(text) {
    const t = String(text).trim();
    return /[.!?]$/.test(t) ? t : t + ".";
  }

  // An API failure in words: the service's own sentence, with what to do about it.
  function describe(context, error) {
    let text = context + ": " + sentence(error.message);
    const wait = Number(error.retryAfter);
    if ((error.status === 429 || error.status === 503) && wait > 0) {
      text += " Try again in " + seconds(wait) + ".";
    }
    return text;
  }

  // --- The API. ---

  class ApiError extends Error {
    constructor(status, message, data, retryAfter) {
      super(message);
      this.status = status;
      this.data = data;
      this.retryAfter = retryAfter;
    }

    get invalidKey() {
      return this.status === 403 && this.message === "Invalid access key";
    }
  }

  async function api(method, path, payload, useKey) {
    const headers = { Accept: "application/json" };
    const init = {
      method,
      headers,
      credentials: "omit",
      cache: "no-store",
      redirect: "error",
      referrerPolicy: "no-referrer",
    };
    if (payload !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(payload);
    }
    if (useKey !== false && state.key) {
      headers.Authorization = "Bearer " + state.key;
    }
    let response;
    try {
      response = await fetch(path, init);
    } catch (e) {
      throw new ApiError(0, "The service could not be reached. Check your connection and try again", null, null);
    }
    let answer = null;
    try {
      answer = await response.json();
    } catch (e) {
      answer = null;
    }
    if (response.ok && answer && answer.success === true) {
      return answer.data;
    }
    const message =
      answer && typeof answer.error === "string" && answer.error
        ? answer.error
        : "The service answered unexpectedly (HTTP " + response.status + ")";
    throw new ApiError(response.status, message, answer ? answer.data : null, response.headers.get("Retry-After"));
  }

  // A call with the key: a key that no longer works ends the session here, with a word why.
  async function withKey(method, path, payload) {
    try {
      return await api(method, path, payload, true);
    } catch (e) {
      if (e instanceof ApiError && e.invalidKey) {
        forgetKey();
        show("view-sign-in");
        showError(
          "Your session has ended: this device's key was revoked or has expired. Sign in again; the reason is listed under Revoked keys."
        );
        throw new SessionEnded();
      }
      throw e;
    }
  }

  class SessionEnded extends Error {}

  // --- Views. ---

  function show(id, focus) {
    for (const view of views) {
      $(view).hidden = view !== id;
    }
    if (focus !== false) {
      const heading = $(id).querySelector("h1");
      if (heading) {
        heading.focus();
      }
    }
  }

  // A form waiting for its answer is marked busy (and not sent twice); nothing is disabled, so
  // that the keyboard focus stays where it was.
  function busy(form, on) {
    form.setAttribute("aria-busy", on ? "true" : "false");
  }

  // --- Words. ---

  const dateFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });

  function time(iso) {
    const element = document.createElement("time");
    element.dateTime = iso;
    const date = new Date(iso);
    element.textContent = isNaN(date.getTime()) ? iso : dateFormat.format(date);
    element.title = iso;
    return element;
  }

  // Why a key stopped working, as a phrase ("revoked because ...").
  function reasonPhrase(reason, key) {
    switch (reason) {
      case "signed_out":
        return "revoked because it was signed out";
      case "expired": {
        const lived = key ? Date.parse(key.revoked) - Date.parse(key.created) : NaN;
        if (!(lived < config.keyLifetimeMs - 1000) || !config.idleTimeout) {
          return "expired: a key lasts " + config.keyLifetime;
        }
        return "expired after " + config.idleTimeout + " without use";
      }
      case "ip_changes":
        return "revoked because it was used from " + config.anomalyNetworks + " networks within " + config.anomalyWindow;
      case "request_flood":
        return (
          "revoked because it made more than " + config.floodRequests + " requests within " + config.floodWindow
        );
      case "evicted":
        return (
          "revoked to make room: an account holds at most " +
          config.maxKeys +
          " keys, and this one was the least recently used when another device signed in"
        );
      case "password_changed":
        return "revoked because the password was changed";
      case "admin":
        return "revoked by an administrator";
      case "suspended":
        return "revoked because the account was suspended";
      case "account_deleted":
        return "revoked because the account was deleted";
      default:
        return "revoked (" + reason + ")";
    }
  }

  function capital(text) {
    return text.charAt(0).toUpperCase() + text.slice(1);
  }

  function eventWords(event) {
    const d = event.detail || {};
    switch (event.kind) {
      case "signed_up":
        return "Account created";
      case "signed_in":
        return d.user_agent ? "Signed in with " + d.user_agent : "Signed in";
      case "sign_in_failed":
        return d.via === "reset_code"
          ? "A password reset failed: wrong or expired code"
          : "A sign-in failed: wrong password";
      case "reset_code_issued":
        return "Support issued a password reset code" +
          (d.expires ? " (valid until " + dateFormat.format(new Date(d.expires)) + ")" : "");
      case "password_reset":
        return "Password reset with a code";
      case "sign_in_throttled":
        return "Sign-ins were paused after too many failures";
      case "key_revoked":
        return "Key " + reasonPhrase(d.reason, null);
      case "password_changed":
        return "Password changed";
      case "account_deleted":
        return "Account deleted";
      case "suspended":
        return (
          "Account suspended" +
          (d.reason ? ": " + d.reason : "") +
          (d.until ? " (until " + dateFormat.format(new Date(d.until)) + ")" : " (permanently)")
        );
      case "suspension_lifted":
        return "Suspension lifted";
      case "role_changed":
        return "Role changed" + (d.from && d.to ? " from " + d.from + " to " + d.to : "");
      case "imported":
        return "Account moved in from the previous game server";
      default:
        return event.kind;
    }
  }

  function element(tag, className, text) {
    const e = document.createElement(tag);
    if (className) {
      e.className = className;
    }
    if (text !== undefined) {
      e.textContent = text;
    }
    return e;
  }

  function facts(rows) {
    const dl = document.createElement("dl");
    for (const [term, value] of rows) {
      dl.append(element("dt", null, term));
      const dd = document.createElement("dd");
      if (value instanceof Node) {
        dd.append(value);
      } else {
        dd.textContent = value;
      }
      dl.append(dd);
    }
    return dl;
  }

  // --- The account view. ---

  function renderUser(user) {
    state.user = user;
    $("account-name").textContent = user.name;
    $("account-created").replaceChildren(time(user.created));
    $("account-role").textContent = user.role === "ADMIN" ? " · administrator" : "";
    $("password-username").value = user.name;
  }

  function renderKeys(list) {
    const keys = $("keys");
    keys.replaceChildren();
    for (const key of list.keys) {
      const item = element("li", key.current ? "card current" : "card");
      item.dataset.keyId = key.id;
      const title = element("p", "card-title");
      if (key.current) {
        title.append(element("span", "badge", "This device"));
      }
      title.append(document.createTextNode(key.user_agent || "Unknown device (no user agent sent)"));
      item.append(title);
      item.append(
        facts([
          ["Created", time(key.created)],
          ["Last used", key.last_used ? time(key.last_used) : "Never"],
          ["Last used from", key.last_ip || "Unknown"],
          ["Expires", time(key.expires)],
        ])
      );
      if (!key.current) {
        const revoke = element("button", "danger", "Revoke this key");
        revoke.type = "button";
        revoke.setAttribute("aria-label", "Revoke the key of " + (key.user_agent || "an unknown device"));
        revoke.addEventListener("click", () => revokeKey(key, revoke));
        item.append(revoke);
      }
      keys.append(item);
    }

    const revoked = $("revoked");
    revoked.replaceChildren();
    for (const key of list.revoked) {
      const item = element("li", "card");
      item.dataset.keyId = key.id;
      item.dataset.reason = key.reason;
      item.append(element("p", "reason", capital(reasonPhrase(key.reason, key)) + "."));
      const rows = [
        [key.reason === "expired" ? "Expired" : "Revoked", time(key.revoked)],
        ["Created", time(key.created)],
      ];
      if (key.network) {
        rows.push(["From network", key.network]);
      }
      item.append(facts(rows));
      revoked.append(item);
    }
    $("revoked-empty").hidden = list.revoked.length > 0;
  }

  function renderEvents(page, append) {
    const events = $("events");
    if (!append) {
      events.replaceChildren();
    }
    for (const event of page.events) {
      const item = document.createElement("li");
      item.dataset.kind = event.kind;
      item.append(time(event.at));
      let text = eventWords(event);
      if (event.actor_id && state.user && event.actor_id !== state.user.id) {
        text += ", by an administrator";
      }
      if (event.network) {
        text += " (network " + event.network + ")";
      }
      item.append(document.createTextNode(sentence(text)));
      events.append(item);
    }
    state.eventsNext = page.next;
    $("events-more").hidden = !page.next;
    $("events-empty").hidden = events.children.length > 0;
  }

  async function loadAccount(focus) {
    const [me, keys, events] = await Promise.all([
      withKey("GET", "/users/me"),
      withKey("GET", "/auth/keys"),
      withKey("GET", "/users/me/events?limit=" + EVENTS_PAGE),
    ]);
    renderUser(me.user);
    renderKeys(keys);
    renderEvents(events, false);
    show("view-account", focus);
  }

  // Runs an action of the account view: errors in words, a session that ended handled.
  async function act(context, run) {
    try {
      await run();
    } catch (e) {
      if (e instanceof SessionEnded) {
        return;
      }
      showError(describe(context, e));
    }
  }

  async function refreshKeys() {
    renderKeys(await withKey("GET", "/auth/keys"));
  }

  async function revokeKey(key, button) {
    const device = key.user_agent || "an unknown device";
    if (!window.confirm("Revoke the key of " + device + "? That device will have to sign in again.")) {
      return;
    }
    button.disabled = true;
    await act("Could not revoke the key", async () => {
      await withKey("DELETE", "/auth/keys/" + encodeURIComponent(key.id));
      await refreshKeys();
      showNotice("The key of " + device + " is revoked: it no longer works.");
      $("keys-title").focus();
    });
    button.disabled = false;
  }

  // --- Forms and buttons. ---

  function onSubmit(id, handler) {
    const form = $(id);
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      if (form.getAttribute("aria-busy") === "true") {
        return;
      }
      busy(form, true);
      try {
        await handler(form);
      } finally {
        busy(form, false);
      }
    });
  }

  function value(form, name) {
    return form.elements[name].value;
  }

  function missing(form, names, what) {
    for (const name of names) {
      if (!value(form, name)) {
        showError("Please fill in the " + what[name] + ".");
        form.elements[name].focus();
        return true;
      }
    }
    return false;
  }

  async function signedIn(key, notice) {
    rememberKey(key);
    await loadAccount(true);
    if (notice) {
      showNotice(notice);
    } else {
      clearMessages();
    }
  }

  onSubmit("sign-in-form", async (form) => {
    if (missing(form, ["username", "password"], { username: "username", password: "password" })) {
      return;
    }
    let data;
    try {
      data = await api("POST", "/auth", { username: value(form, "username"), password: value(form, "password") }, false);
    } catch (e) {
      if (e.status === 403 && e.data && e.data.suspension) {
        form.reset();
        showSuspension(e.data.suspension);
        return;
      }
      showError(describe("Could not sign in", e));
      return;
    }
    form.reset();
    await act("Signed in, but the account could not be loaded", () => signedIn(data.key, null));
  });

  onSubmit("sign-up-form", async (form) => {
    if (missing(form, ["username", "password"], { username: "username", password: "password" })) {
      return;
    }
    let data;
    try {
      data = await api("POST", "/users", { username: value(form, "username"), password: value(form, "password") }, false);
    } catch (e) {
      showError(describe("Could not create the account", e));
      return;
    }
    form.reset();
    await act("The account is created, but could not be loaded", () =>
      signedIn(data.key, "Welcome, " + data.user.name + ": your account is ready.")
    );
  });

  onSubmit("reset-form", async (form) => {
    if (
      missing(form, ["username", "code", "new_password"], {
        username: "username",
        code: "reset code",
        new_password: "new password",
      })
    ) {
      return;
    }
    let data;
    try {
      data = await api(
        "POST",
        "/users/reset",
        {
          username: value(form, "username"),
          code: value(form, "code"),
          new_password: value(form, "new_password"),
        },
        false
      );
    } catch (e) {
      if (e.status === 403 && e.data && e.data.suspension) {
        form.reset();
        showSuspension(e.data.suspension);
        showNotice("Your new password is set, but the account is suspended.");
        return;
      }
      showError(describe("Could not set the new password", e));
      return;
    }
    form.reset();
    await act("The password is set, but the account could not be loaded", () =>
      signedIn(data.key, "Your new password is set. Every other device has been signed out.")
    );
  });

  function showSuspension(suspension) {
    $("suspension-reason").textContent = suspension.reason;
    const until = $("suspension-until");
    if (suspension.until) {
      until.replaceChildren(time(suspension.until));
    } else {
      until.textContent = "Never: the suspension is permanent.";
    }
    clearMessages();
    show("view-suspended");
  }

  onSubmit("password-form", async (form) => {
    if (
      missing(form, ["current_password", "new_password"], {
        current_password: "current password",
        new_password: "new password",
      })
    ) {
      return;
    }
    await act("Could not change the password", async () => {
      const data = await withKey("PUT", "/users/me/password", {
        current_password: value(form, "current_password"),
        new_password: value(form, "new_password"),
      });
      form.reset();
      rememberKey(data.key);
      await loadAccount(false);
      showNotice("Password changed. Every other device has been signed out; this one holds a new key.");
      $("account-title").focus();
    });
  });

  onSubmit("delete-form", async (form) => {
    if (missing(form, ["password"], { password: "password" })) {
      return;
    }
    if (!form.elements.confirm.checked) {
      showError("Please tick the box to confirm that the account is to be deleted for good.");
      form.elements.confirm.focus();
      return;
    }
    await act("Could not delete the account", async () => {
      await withKey("DELETE", "/users/me", { password: value(form, "password") });
      form.reset();
      forgetKey();
      show("view-sign-in");
      showNotice("Your account has been deleted, with all its keys.");
    });
  });

  $("sign-out").addEventListener("click", async () => {
    try {
      await api("DELETE", "/auth", undefined, true);
    } catch (e) {
      if (!(e instanceof ApiError && e.invalidKey)) {
        showError(describe("Could not sign out", e));
        return;
      }
    }
    forgetKey();
    show("view-sign-in");
    showNotice("Signed out. This device's key no longer works.");
  });

  $("sign-out-all").addEventListener("click", async () => {
    if (!window.confirm("Sign out everywhere? Every device, this one included, will have to sign in again.")) {
      return;
    }
    await act("Could not sign out everywhere", async () => {
      await withKey("DELETE", "/auth?all=true");
      forgetKey();
      show("view-sign-in");
      showNotice("Signed out everywhere: every key of your account is revoked.");
    });
  });

  $("refresh").addEventListener("click", () =>
    act("Could not refresh", async () => {
      await loadAccount(false);
      showNotice("Up to date.");
    })
  );

  $("events-more").addEventListener("click", () =>
    act("Could not load older activity", async () => {
      if (!state.eventsNext) {
        return;
      }
      const page = await withKey(
        "GET",
        "/users/me/events?limit=" + EVENTS_PAGE + "&after=" + encodeURIComponent(state.eventsNext)
      );
      renderEvents(page, true);
    })
  );

  $("to-sign-up").addEventListener("click", () => {
    clearMessages();
    show("view-sign-up");
  });

  $("to-reset").addEventListener("click", () => {
    clearMessages();
    show("view-reset");
  });

  $("reset-to-sign-in").addEventListener("click", () => {
    clearMessages();
    show("view-sign-in");
  });

  $("to-sign-in").addEventListener("click", () => {
    clearMessages();
    show("view-sign-in");
  });

  $("suspended-back").addEventListener("click", () => {
    clearMessages();
    show("view-sign-in");
  });

  // --- Start: a key kept by this tab signs in again; otherwise the sign-in form. ---

  async function start() {
    const key = storedKey();
    if (!key) {
      show("view-sign-in", false);
      return;
    }
    state.key = key;
    try {
      await loadAccount(false);
    } catch (e) {
      if (e instanceof SessionEnded) {
        return;
      }
      show("view-sign-in", false);
      showError(describe("Could not load your account", e));
    }
  }

  start();
})();
