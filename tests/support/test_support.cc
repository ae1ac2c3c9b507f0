// Anchor for the test support library; helpers live in their own files here.
