#!/usr/bin/python3
"""The desktop a test needs on a private session bus: a StatusNotifier
watcher + host (org.kde.StatusNotifierWatcher, where tray icons register),
a notification daemon (org.freedesktop.Notifications) that records
every Notify call and can report a click (ActionInvoked) on one, and a
Unity-style launcher (it owns com.canonical.Unity, so libunity reports
badge counts, and records their com.canonical.Unity.LauncherEntry.Update).

Driven by tests/e2e/desktop-bus.mjs through stdin/stdout, one JSON object a
line. Out: {"event": "ready"}, {"event": "notify", "id", "summary", "body",
"actions", "app_name"}, {"event": "item", "service", "path"}, {"event":
"badge", "app_uri", "props"} and
{"reply": n, "ok": ...} or {"reply": n, "err": "..."}. In: {"id": n, "cmd":
"tray"} (each registered item's properties and its menu, read over D-Bus),
{"id": n, "cmd": "menu_click", "label": "..."} and {"id": n, "cmd":
"click_notification", "nid": 3, "action": "default"}.
"""
import json
import sys
import time

import dbus
import dbus.service
from dbus.mainloop.glib import DBusGMainLoop
from gi.repository import GLib

WATCHER = "org.kde.StatusNotifierWatcher"
ITEM = "org.kde.StatusNotifierItem"
NOTIFICATIONS = "org.freedesktop.Notifications"
PROPS = "org.freedesktop.DBus.Properties"
MENU = "com.canonical.dbusmenu"


def out(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def plain(v):
    """D-Bus values as JSON ones."""
    if isinstance(v, (dbus.String, dbus.ObjectPath, dbus.Signature)):
        return str(v)
    if isinstance(v, dbus.Boolean):
        return bool(v)
    if isinstance(v, (dbus.Byte, dbus.Int16, dbus.Int32, dbus.Int64, dbus.UInt16, dbus.UInt32, dbus.UInt64)):
        return int(v)
    if isinstance(v, dbus.Double):
        return float(v)
    if isinstance(v, dict):
        return {str(k): plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [plain(x) for x in v]
    return v


class Watcher(dbus.service.Object):
    def __init__(self, bus):
        super().__init__(bus, "/StatusNotifierWatcher")
        self.items = []  # (bus name, object path)

    @dbus.service.method(WATCHER, in_signature="s", sender_keyword="sender")
    def RegisterStatusNotifierItem(self, service, sender=None):
        path = service if service.startswith("/") else "/StatusNotifierItem"
        name = sender if service.startswith("/") else service
        self.items.append((str(name), str(path)))
        out({"event": "item", "service": str(name), "path": str(path)})
        self.StatusNotifierItemRegistered(f"{name}{path}")

    @dbus.service.method(WATCHER, in_signature="s")
    def RegisterStatusNotifierHost(self, service):
        pass

    @dbus.service.signal(WATCHER, signature="s")
    def StatusNotifierItemRegistered(self, service):
        pass

    @dbus.service.signal(WATCHER, signature="")
    def StatusNotifierHostRegistered(self):
        pass

    def _props(self):
        return {
            "RegisteredStatusNotifierItems": dbus.Array([f"{n}{p}" for n, p in self.items], signature="s"),
            "IsStatusNotifierHostRegistered": dbus.Boolean(True),
            "ProtocolVersion": dbus.Int32(0),
        }

    @dbus.service.method(PROPS, in_signature="ss", out_signature="v")
    def Get(self, interface, prop):
        return self._props()[prop]

    @dbus.service.method(PROPS, in_signature="s", out_signature="a{sv}")
    def GetAll(self, interface):
        return self._props()


class Notifications(dbus.service.Object):
    def __init__(self, bus):
        super().__init__(bus, "/org/freedesktop/Notifications")
        self.next_id = 1

    @dbus.service.method(NOTIFICATIONS, in_signature="susssasa{sv}i", out_signature="u")
    def Notify(self, app_name, replaces_id, icon, summary, body, actions, hints, timeout):
        nid = int(replaces_id) or self.next_id
        self.next_id = max(self.next_id, nid + 1)
        out({"event": "notify", "id": nid, "app_name": str(app_name), "summary": str(summary),
             "body": str(body), "actions": plain(actions)})
        return nid

    @dbus.service.method(NOTIFICATIONS, in_signature="", out_signature="as")
    def GetCapabilities(self):
        return ["actions", "body"]

    @dbus.service.method(NOTIFICATIONS, in_signature="", out_signature="ssss")
    def GetServerInformation(self):
        return ("courier-e2e", "courier", "1", "1.2")

    @dbus.service.method(NOTIFICATIONS, in_signature="u")
    def CloseNotification(self, nid):
        self.NotificationClosed(nid, 3)

    @dbus.service.signal(NOTIFICATIONS, signature="uu")
    def NotificationClosed(self, nid, reason):
        pass

    @dbus.service.signal(NOTIFICATIONS, signature="us")
    def ActionInvoked(self, nid, action):
        pass


def menu_items(layout):
    """The dbusmenu layout (id, props, children) as a flat list."""
    item_id, props, children = layout
    items = [] if int(item_id) == 0 else [{"id": int(item_id), **plain(props)}]
    for child in children:
        items.extend(menu_items(child))
    return items


def main():
    DBusGMainLoop(set_as_default=True)
    bus = dbus.SessionBus()
    watcher = Watcher(bus)
    notes = Notifications(bus)
    names = [dbus.service.BusName(n, bus, do_not_queue=True) for n in (WATCHER, NOTIFICATIONS, "com.canonical.Unity")]

    def on_launcher_update(app_uri, props):
        out({"event": "badge", "app_uri": str(app_uri), "props": plain(props)})

    bus.add_signal_receiver(on_launcher_update, signal_name="Update", dbus_interface="com.canonical.Unity.LauncherEntry")

    def tray():
        found = []
        for name, path in watcher.items:
            obj = bus.get_object(name, path)
            props = plain(obj.GetAll(ITEM, dbus_interface=PROPS))
            menu = []
            if props.get("Menu"):
                m = bus.get_object(name, props["Menu"])
                _rev, layout = m.GetLayout(0, -1, dbus.Array([], signature="s"), dbus_interface=MENU)
                menu = menu_items(layout)
            found.append({"service": name, "path": path, "props": props, "menu": menu})
        return found

    def menu_click(label):
        for item in tray():
            for entry in item["menu"]:
                if entry.get("label", "").replace("_", "") == label:
                    m = bus.get_object(item["service"], item["props"]["Menu"])
                    m.Event(dbus.Int32(entry["id"]), "clicked", dbus.Int32(0, variant_level=1),
                            dbus.UInt32(int(time.time())), dbus_interface=MENU)
                    return entry["id"]
        raise KeyError(f"no menu item {label!r}")

    def on_line(source, _cond):
        line = source.readline()
        if not line:
            loop.quit()
            return False
        if not line.strip():
            return True
        req = json.loads(line)
        try:
            if req["cmd"] == "tray":
                ok = tray()
            elif req["cmd"] == "menu_click":
                ok = menu_click(req["label"])
            elif req["cmd"] == "click_notification":
                notes.ActionInvoked(dbus.UInt32(req["nid"]), req.get("action", "default"))
                ok = True
            else:
                raise KeyError(req["cmd"])
            out({"reply": req["id"], "ok": ok})
        except Exception as e:  # noqa: BLE001 - every failure goes back to the test
            out({"reply": req["id"], "err": f"{type(e).__name__}: {e}"})
        return True

    loop = GLib.MainLoop()
    GLib.io_add_watch(sys.stdin, GLib.IO_IN | GLib.IO_HUP, on_line)
    out({"event": "ready", "names": [n.get_name() for n in names]})
    loop.run()


if __name__ == "__main__":
    main()
