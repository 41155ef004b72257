// Service worker of the page `/` (served at /sw.js, scope `/`): shows Web Push notifications
// ({kind, title, body, url?}, docs/billing.md) and focuses or opens the page when clicked.
self.addEventListener("push", (event) => {
  let data = {};
  try { data = event.data ? event.data.json() : {}; } catch { data = { body: event.data?.text() ?? "" }; }
  const title = data.title || "Synthia Style";
  event.waitUntil(self.registration.showNotification(title, {
    body: data.body || "",
    tag: data.kind || "synthia",
    data: { url: data.url || "/" },
  }));
});

self.addEventListener("notificationclick", (event) => {
  event.notification.close();
  const url = new URL(event.notification.data?.url || "/", self.location.origin).href;
  event.waitUntil((async () => {
    const windows = await self.clients.matchAll({ type: "window", includeUncontrolled: true });
    for (const w of windows) {
      if (new URL(w.url).origin === self.location.origin) { await w.focus(); return w.navigate?.(url); }
    }
    return self.clients.openWindow(url);
  })());
});
