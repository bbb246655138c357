//! provisioner library.
