/*
 * hello.c - the smallest program using an installed cairn.
 *
 *   hello DIR
 *
 * The first run creates the store DIR, commits one object (a note that
 * points at itself) under the root "hello", closes the store, reopens it
 * and reads the note back.  Later runs only reopen and read.  Exit status
 * 0 if the note came back as written, non-zero otherwise.
 *
 * Build it against an installed cairn either way:
 *   cc hello.c -o hello $(pkg-config --cflags --libs cairn)
 *   or the CMakeLists.txt next to it (find_package(cairn), cairn::cairn).
 */
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cairn.h>

struct note {
    char text[32];
    struct note *self; /* pointer field */
};

static const char message[] = "hello from a cairn store";

static int fail(cairn_store *s, const char *what, int rc)
{
    fprintf(stderr, "hello: %s: %s (%s)\n", what, cairn_strerror(rc), s ? cairn_errmsg(s) : "");
    cairn_close(s);
    return 1;
}

static int write_note(const char *dir)
{
    cairn_store *s;
    int rc = cairn_open(dir, NULL, &s);
    if (rc)
        return fail(NULL, "open", rc);
    struct note *n;
    if (cairn_root_get(s, "hello", (void **)&n) == CAIRN_OK) {
        cairn_close(s);
        return 0; /* written by an earlier run */
    }
    cairn_type note_type;
    size_t ptrs[] = {offsetof(struct note, self)};
    cairn_txn *t;
    if ((rc = cairn_type_register(s, "hello.note", sizeof(struct note), ptrs, 1, &note_type)))
        return fail(s, "register", rc);
    if ((rc = cairn_txn_begin(s, &t)))
        return fail(s, "begin", rc);
    if ((rc = cairn_alloc(t, note_type, 1, (void **)&n)) || (rc = cairn_root_set(t, "hello", n))) {
        cairn_txn_abort(t);
        return fail(s, "alloc/root_set", rc);
    }
    strcpy(n->text, message);
    n->self = n;
    if ((rc = cairn_txn_commit(t))) {
        cairn_txn_abort(t);
        return fail(s, "commit", rc);
    }
    printf("hello: wrote the note\n");
    rc = cairn_close(s);
    return rc ? fail(NULL, "close", rc) : 0;
}

static int read_note(const char *dir)
{
    cairn_store *s;
    int rc = cairn_open(dir, NULL, &s);
    if (rc)
        return fail(NULL, "reopen", rc);
    const struct note *n;
    if ((rc = cairn_root_get(s, "hello", (void **)&n)))
        return fail(s, "root_get", rc);
    int ok = strcmp(n->text, message) == 0 && n->self == n;
    printf("hello: read back \"%.31s\"%s\n", n->text, ok ? "" : " - WRONG");
    rc = cairn_close(s);
    if (rc)
        return fail(NULL, "close", rc);
    return ok ? 0 : 2;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: hello DIR\n");
        return 1;
    }
    int rc = write_note(argv[1]);
    return rc ? rc : read_note(argv[1]);
}
