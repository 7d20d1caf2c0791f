import reflex as rx

config = rx.Config(
    app_name="app",
    telemetry_enabled=False,
)
