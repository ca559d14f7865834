"""The screens of the app: main, model details, help, quit and export dialogs."""
