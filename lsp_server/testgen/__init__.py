"""Generate unit tests: candidates from the pro model, kept only when they pass.

Protocol-free (no pygls, no lsprotocol); one module per question, each step a function a unit
test reaches without a server:
1. project: the project root, the module's import name, `tests/test_<module>.py`, the project's
   interpreter and test framework, and an existing test file to show as an example.
2. subjects: the function, the method, or the public methods of the class at the cursor.
3. candidates (with sampling, which talks to the engine): candidates from the docstring's
   examples, from the exceptions the body raises, and from the model, which fills the expected
   value of calls built from the structure (a base model, by fill-in-the-middle) or writes
   whole tests (a chat model, from the chat prompt).
4. runner (and sandbox, the script it starts): every candidate in one subprocess of the
   project's interpreter, in a fresh temporary directory, with a scrubbed environment, network
   access blocked, a time limit per test and for the whole run, output captured.
5. candidates.select and edits: one passing test per behaviour, written into the test file —
   created, or appended with only new import lines added after the existing imports.
generation ties 2-5 together for one definition; command is the editor command around it:
its checks, the write under a lock, and what the user is told.
"""
