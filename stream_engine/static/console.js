// The operator console: polls /console/api/live each second and redraws what changed.
// Every action asks for confirmation, then goes through the engine (as the room's host
// would); the next poll shows its result. No framework, no build step; user-supplied text
// is only ever set as textContent.
"use strict";

const TOKEN_KEY = "utd-operator-token";
const POLL_MS = 1000;
let lastBody = null;
let timer = null;

const $ = (id) => document.getElementById(id);

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (key === "class") node.className = value;
    else if (key === "onclick") node.addEventListener("click", value);
    else if (key.startsWith("data-")) node.setAttribute(key, value);
    else node[key] = value;
  }
  for (const child of children) {
    if (child !== null && child !== undefined) {
      node.append(typeof child === "string" ? document.createTextNode(child) : child);
    }
  }
  return node;
}

function token() { return sessionStorage.getItem(TOKEN_KEY); }

async function api(method, path, body) {
  const response = await fetch(path, {
    method, cache: "no-store",
    headers: { "Authorization": "Bearer " + token(), "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  const data = text ? JSON.parse(text) : {};
  if (!response.ok) {
    const message = (data.error && data.error.message) || response.statusText;
    const error = new Error(message);
    error.status = response.status;
    throw error;
  }
  return data;
}

function setStatus(text, isError) {
  $("status").textContent = text;
  $("status").className = isError ? "error" : "";
}

async function act(question, method, path, body) {
  if (!window.confirm(question)) return;
  try {
    await api(method, path, body);
    setStatus("done: " + question.replace(/\?$/, ""));
    await poll();
  } catch (error) {
    setStatus("refused: " + error.message, true);
  }
}

function roomPath(room, action) {
  return "/console/api/rooms/" + encodeURIComponent(room.app_id) + "/" +
    encodeURIComponent(room.name) + "/" + action;
}

function seatGrid(room) {
  const state = room.state;
  const grid = el("div", { class: "seats" });
  for (const seat of state.seats) {
    const classes = ["seat"];
    if (seat.occupant) classes.push("taken");
    if (seat.locked) classes.push("locked");
    const box = el("div", { class: classes.join(" "), "data-seat": String(seat.index),
                            "data-occupant": seat.occupant || "" },
      el("strong", {}, "#" + seat.index + " "),
      seat.occupant || (seat.locked ? "locked" : "free"),
      seat.muted ? " (muted)" : "");
    if (seat.occupant) {
      box.append(" ", el("button", {
        class: "kick danger", type: "button", "data-identity": seat.occupant,
        onclick: () => act("Kick " + seat.occupant + " from seat " + seat.index + " of " +
                           room.name + "?", "POST", roomPath(room, "kick_from_seat"),
                           { identity: seat.occupant }),
      }, "kick"));
    }
    grid.append(box);
  }
  const hands = state.requests.map((r) => r.identity + (r.seat_index === null ? "" : " (seat " + r.seat_index + ")"));
  return [grid, el("div", { class: "list hands" }, "Hand raises: " + (hands.join(", ") || "none"))];
}

function stage(room) {
  const state = room.state;
  const list = el("div", { class: "list stage" }, "Stage: ");
  for (const member of state.members) {
    const item = el("span", { class: "member", "data-identity": member.identity },
      member.identity + (member.role ? " (" + member.role + ")" : ""));
    if (member.identity !== state.host) {
      item.append(" ", el("button", {
        class: "remove danger", type: "button", "data-identity": member.identity,
        onclick: () => act("Remove " + member.identity + " from the stage of " + room.name + "?",
                           "POST", roomPath(room, "remove_from_stage"),
                           { identity: member.identity }),
      }, "remove"));
    }
    list.append(item, " ");
  }
  if (!state.members.length) list.append("nobody");
  return [list, el("div", { class: "list hands" }, "Hands: " + (state.hands.join(", ") || "none"))];
}

function renderRoom(room) {
  const title = el("h3", {}, room.name + " ",
    el("span", { class: "meta" }, room.kind.replace("_", " ") + " · app " + room.app_id +
       " · host " + (room.state.host || "none") + " · " + room.present + " present · " +
       room.audience + " in the audience "),
    el("button", {
      class: "close danger", type: "button",
      onclick: () => act("Close room " + room.name + " (everyone is disconnected)?", "POST",
                         roomPath(room, "close")),
    }, "close room"));
  const body = room.kind === "audio_room" ? seatGrid(room) : stage(room);
  return el("section", { class: "room", "data-app": room.app_id, "data-room": room.name },
            title, ...body);
}

function renderCall(call) {
  const path = "/console/api/calls/" + encodeURIComponent(call.app_id) + "/" +
    encodeURIComponent(call.call_id) + "/end";
  return el("tr", { class: "call", "data-call": call.call_id, "data-status": call.status },
    el("td", {}, call.app_id), el("td", {}, call.call_id), el("td", {}, call.type),
    el("td", {}, call.status), el("td", {}, call.caller_identity),
    el("td", {}, call.callee_identity),
    el("td", {}, el("button", {
      class: "end danger", type: "button",
      onclick: () => act("End call " + call.call_id + " (" + call.caller_identity + " → " +
                         call.callee_identity + ")?", "POST", path),
    }, "end call")));
}

function render(live) {
  $("operator").textContent = "operator: " + live.operator;
  $("room-count").textContent = "(" + live.rooms.length + " live)";
  $("call-count").textContent = "(" + live.calls.length + " ringing or active)";
  $("rooms").replaceChildren(...live.rooms.map(renderRoom));
  $("calls").tBodies[0].replaceChildren(...live.calls.map(renderCall));
}

async function poll() {
  try {
    const live = await api("GET", "/console/api/live");
    const body = JSON.stringify(live);
    if (body !== lastBody) {  // redraw only on change: a button is never replaced mid-click
      lastBody = body;
      render(live);
    }
    if (!$("status").classList.contains("error") || $("status").textContent.startsWith("poll")) {
      setStatus("live · updated " + new Date().toLocaleTimeString());
    }
  } catch (error) {
    if (error.status === 401) { signOut("token refused"); return; }
    setStatus("poll failed: " + error.message, true);
  }
}

function signedIn() {
  $("signin").hidden = true;
  $("main").hidden = false;
  lastBody = null;
  poll();
  timer = setInterval(poll, POLL_MS);
}

function signOut(why) {
  sessionStorage.removeItem(TOKEN_KEY);
  clearInterval(timer);
  $("main").hidden = true;
  $("signin").hidden = false;
  setStatus(why || "not signed in", Boolean(why));
}

$("signin").addEventListener("submit", (event) => {
  event.preventDefault();
  sessionStorage.setItem(TOKEN_KEY, $("token").value.trim());
  $("token").value = "";
  signedIn();
});
$("sign-out").addEventListener("click", () => signOut());
if (token()) signedIn();
