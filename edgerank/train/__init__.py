"""Training code (teacher, distillation). The runtime never imports anything from here."""
