/* test_smoke.c - the example from the README, end to end in one process. */
#include "testutil.h"

#include <stdlib.h>

struct node {
    int64_t key;
    struct node *left, *right;
};

static void roundtrip_small_tree(void **state)
{
    const char *dir = *state;
    cairn_options o;
    tu_options(&o);
    cairn_store *s;
    cairn_txn *t;
    struct node *root;
    assert_cairn_ok(cairn_open(dir, &o, &s));
    cairn_type node_t;
    size_t ptrs[] = {offsetof(struct node, left), offsetof(struct node, right)};
    assert_cairn_ok(cairn_type_register(s, "node", sizeof(struct node), ptrs, 2, &node_t));
    assert_cairn_ok(cairn_txn_begin(s, &t));
    assert_cairn_ok(cairn_alloc(t, node_t, 1, (void **)&root));
    root->key = 42;
    assert_cairn_ok(cairn_alloc(t, node_t, 1, (void **)&root->left));
    root->left->key = 7;
    assert_cairn_ok(cairn_root_set(t, "tree", root));
    assert_cairn_ok(cairn_txn_commit(t));
    assert_cairn_ok(cairn_close(s));

    assert_cairn_ok(cairn_open(dir, &o, &s));
    assert_cairn_ok(cairn_root_get(s, "tree", (void **)&root));
    assert_int_equal(root->key, 42);
    assert_int_equal(root->left->key, 7);
    assert_null(root->right);
    assert_cairn_ok(cairn_close(s));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        tu_dir_test(roundtrip_small_tree),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
