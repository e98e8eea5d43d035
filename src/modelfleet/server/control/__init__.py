"""The control loop: controller, reconciler, supervisor, autoscaler, replica states, clock."""
