"""Controllers that make storage converge: binder, provisioner, reclaim, protection, scheduler."""
