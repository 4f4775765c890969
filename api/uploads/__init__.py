"""Everything that touches the untrusted bytes of an upload, in the order they meet them.

`multipart` streams the request body to a temp file under a byte cap; `filekinds` checks
the name's extension against the magic bytes; `staging` runs a `validation` function on
the file inside the resource-limited child of `sandbox`, then publishes the normalised
result and commits its row. `forms` declares each upload route's form fields and
`receive` is the flow the upload routes share. `sandbox_probe` finds out, with one child,
what confinement the children get on this host (`/readyz` reports it).

The sandboxed child runs `sandbox_child` (its entry point) and imports `validation` (the
functions it may run), `sandbox` with `sandbox_answer` and `sandbox_plan` (for the
`@validator` registry) and this package, nothing else of the API: keep this module free
of imports.
"""
