/* The memory floor of the desktop app's engine: a bare WebKitGTK 4.1 window
 * showing one static line of text, nothing else (no Rust, no Tauri, no page
 * script), with the app's one memory setting (no accelerated compositing).
 * `scripts/measure-app.sh --floor` builds it and measures it exactly
 * as it measures the app (docs/benchmarks.md, "Desktop app memory and
 * start-up"): whatever this costs, every WebKitGTK app on this system costs
 * at least as much.
 *
 * When the page has loaded it logs "<RFC 3339 UTC time> first conversation
 * list requested" on stderr: the line the measuring script waits for in the
 * app's log, so start-up is timed the same way. */
#include <gtk/gtk.h>
#include <webkit2/webkit2.h>
#include <stdio.h>
#include <time.h>

static void on_load_changed(WebKitWebView *view, WebKitLoadEvent event, gpointer data) {
  (void)view;
  (void)data;
  if (event != WEBKIT_LOAD_FINISHED) return;
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  struct tm tm;
  gmtime_r(&ts.tv_sec, &tm);
  char stamp[32];
  strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &tm);
  fprintf(stderr, "%s.%06ldZ first conversation list requested (page loaded)\n", stamp, ts.tv_nsec / 1000);
  fflush(stderr);
}

int main(int argc, char **argv) {
  gtk_init(&argc, &argv);
  GtkWidget *window = gtk_window_new(GTK_WINDOW_TOPLEVEL);
  gtk_window_set_default_size(GTK_WINDOW(window), 1024, 720);
  gtk_window_set_title(GTK_WINDOW(window), "WebKitGTK floor");
  GtkWidget *view = webkit_web_view_new();
  /* The app's own setting (src-tauri/src/webview.rs): no accelerated
   * compositing, which under llvmpipe costs ~70 MiB more. */
  WebKitSettings *settings = webkit_web_view_get_settings(WEBKIT_WEB_VIEW(view));
  webkit_settings_set_hardware_acceleration_policy(settings, WEBKIT_HARDWARE_ACCELERATION_POLICY_NEVER);
  g_signal_connect(view, "load-changed", G_CALLBACK(on_load_changed), NULL);
  g_signal_connect(window, "destroy", G_CALLBACK(gtk_main_quit), NULL);
  gtk_container_add(GTK_CONTAINER(window), view);
  webkit_web_view_load_html(WEBKIT_WEB_VIEW(view),
                            "<!doctype html><meta charset=utf-8><body style='font:14px sans-serif'>Courier</body>",
                            "about:blank");
  gtk_widget_show_all(window);
  gtk_main();
  return 0;
}
