"""The app's screens: jobs, new-job form, job detail, devices, compare, help and the small dialogs."""
