/*
 * test_check.c - cairn_check finds what is wrong and nothing else.
 */
#define _GNU_SOURCE
#include "testutil.h"
#include "storeutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pager/layout.h"

/* A store with small and large objects, typed and raw, some freed. */
static void populate(cairn_store *s)
{
    cairn_type lt = tu_link_type(s);
    cairn_txn *t;
    struct tu_link *prev = NULL, *arr;
    void *junk[40];
    assert_cairn_ok(cairn_txn_begin(s, &t));
    for (int i = 0; i < 2000; i++) {
        struct tu_link *l;
        assert_cairn_ok(cairn_alloc(t, lt, 1, (void **)&l));
        l->next = prev;
        l->val = (uint64_t)i;
        prev = l;
    }
    assert_cairn_ok(cairn_alloc(t, lt, 3000, (void **)&arr)); /* large, typed, 12 pages */
    for (int i = 0; i + 1 < 3000; i++)
        arr[i].next = &arr[i + 1];
    arr[2999].next = prev;
    for (int i = 0; i < 40; i++)
        assert_cairn_ok(cairn_alloc_bytes(t, (size_t)(i * 997 % 9000 + 1), &junk[i]));
    for (int i = 0; i < 40; i += 3)
        assert_cairn_ok(cairn_free(t, junk[i]));
    assert_cairn_ok(cairn_root_set(t, "list", prev));
    assert_cairn_ok(cairn_root_set(t, "array", arr));
    assert_cairn_ok(cairn_txn_commit(t));
}

static void clean_store_checks_clean(void **state)
{
    const char *dir = *state;
    cairn_options o;
    tu_options(&o);
    cairn_store *s;
    cairn_check_report r;
    assert_cairn_ok(cairn_open(dir, &o, &s));
    assert_cairn_ok(cairn_check(s, &r)); /* empty store */
    assert_int_equal(r.objects, 0);
    populate(s);
    /* In memory (unflushed) ... */
    assert_cairn_ok(cairn_check(s, &r));
    assert_int_equal(r.problems, 0);
    assert_int_equal(r.objects, 2000 + 1 + 40 - 14);
    assert_true(r.pointers >= 2000 + 3000 - 1 + 2);
    /* ... after a checkpoint, and read back from LMDB after reopen. */
    assert_cairn_ok(cairn_checkpoint(s));
    assert_cairn_ok(cairn_check(s, &r));
    assert_cairn_ok(cairn_close(s));
    assert_cairn_ok(cairn_open(dir, &o, &s));
    assert_cairn_ok(cairn_check(s, &r));
    assert_int_equal(r.objects, 2000 + 1 + 40 - 14);
    assert_true(r.extents_checked > 0);
    assert_cairn_ok(cairn_close(s));
}

static void dangling_pointer_is_reported(void **state)
{
    const char *dir = *state;
    cairn_options o;
    tu_options(&o);
    cairn_store *s;
    cairn_txn *t;
    cairn_check_report r;
    assert_cairn_ok(cairn_open(dir, &o, &s));
    cairn_type lt = tu_link_type(s);
    struct tu_link *a, *b;
    assert_cairn_ok(cairn_txn_begin(s, &t));
    assert_cairn_ok(cairn_alloc(t, lt, 1, (void **)&a));
    assert_cairn_ok(cairn_alloc(t, lt, 1, (void **)&b));
    a->next = b;
    assert_cairn_ok(cairn_free(t, b)); /* a->next now dangles */
    assert_cairn_ok(cairn_root_set(t, "a", a));
    assert_cairn_ok(cairn_txn_commit(t));
    assert_cairn_rc(cairn_check(s, &r), CAIRN_CORRUPT);
    assert_int_equal(r.bad_pointers, 1);
    assert_int_equal(r.problems, 1);
    assert_non_null(strstr(r.first_problem, "not a live object"));
    assert_cairn_ok(cairn_close(s));
}

/* Allocator metadata is damaged through the client view (any store byte
 * can be written inside a transaction), and the checker must see it.  The
 * store is populate()'s; the descriptor is that of the page of the list's
 * first link, a slab page. */
static struct page_desc *list_descriptor(cairn_store *s)
{
    populate(s);
    char *base;
    size_t len;
    assert_cairn_ok(cairn_range(s, (void **)&base, &len));
    struct tu_link *list;
    assert_cairn_ok(cairn_root_get(s, "list", (void **)&list));
    uint64_t n = (uint64_t)((char *)list - base) / PAGE_BYTES;
    struct page_desc *d = (struct page_desc *)(base + layout_desc_page(n) * PAGE_BYTES + layout_desc_offset(n));
    assert_int_equal(d->kind, DESC_SLAB);
    return d;
}

/* A slab page's live count one too high: an allocator error, no bad
 * pointer. */
static void wrong_live_count_is_reported(void **state)
{
    cairn_store *s = tu_open(*state, 0);
    cairn_txn *t;
    cairn_check_report r;
    struct page_desc *d = list_descriptor(s);
    assert_cairn_ok(cairn_txn_begin(s, &t));
    d->live += 1;
    assert_cairn_ok(cairn_txn_commit(t));
    assert_cairn_rc(cairn_check(s, &r), CAIRN_CORRUPT);
    assert_true(r.alloc_errors >= 1);
    assert_int_equal(r.bad_pointers, 0);
    assert_cairn_ok(cairn_close(s));
}

/* A slab page marked unused: the page is leaked and its objects dead, so
 * the pointers to them are bad too. */
static void unused_descriptor_of_live_objects_is_reported(void **state)
{
    cairn_store *s = tu_open(*state, 0);
    cairn_txn *t;
    cairn_check_report r;
    struct page_desc *d = list_descriptor(s);
    assert_cairn_ok(cairn_txn_begin(s, &t));
    d->kind = DESC_UNUSED;
    assert_cairn_ok(cairn_txn_commit(t));
    assert_cairn_rc(cairn_check(s, &r), CAIRN_CORRUPT);
    assert_true(r.alloc_errors >= 1);
    assert_true(r.bad_pointers >= 1);
    assert_cairn_ok(cairn_close(s));
}

/* A pointer bit on a word that is not a pointer field is reported; put
 * back, the store checks clean. */
static void pointer_bit_on_a_plain_word_is_reported(void **state)
{
    cairn_store *s = tu_open(*state, 0);
    cairn_txn *t;
    cairn_check_report r;
    struct page_desc *d = list_descriptor(s);
    assert_cairn_ok(cairn_txn_begin(s, &t));
    d->ptr_bits[0] ^= 2;
    assert_cairn_ok(cairn_txn_commit(t));
    assert_cairn_rc(cairn_check(s, &r), CAIRN_CORRUPT);
    assert_cairn_ok(cairn_txn_begin(s, &t));
    d->ptr_bits[0] ^= 2;
    assert_cairn_ok(cairn_txn_commit(t));
    assert_cairn_ok(cairn_check(s, &r));
    assert_cairn_ok(cairn_close(s));
}

static void corrupt_extent_is_reported(void **state)
{
    const char *dir = *state;
    cairn_options o;
    tu_options(&o);
    cairn_store *s;
    cairn_check_report r;
    assert_cairn_ok(cairn_open(dir, &o, &s));
    populate(s);
    assert_cairn_ok(cairn_close(s));
    tu_flip_extent_byte(dir, TU_LAST_EXTENT);

    assert_cairn_ok(cairn_open(dir, &o, &s));
    assert_cairn_rc(cairn_check(s, &r), CAIRN_CORRUPT);
    assert_int_equal(r.corrupt_extents, 1);
    assert_non_null(strstr(r.first_problem, "fails to decode"));
    assert_cairn_ok(cairn_close(s));
}

/* cairn_stats_get loads the superblock's extent for pages_allocated; when
 * that extent is damaged it returns the load's error, and does not crash. */
static void stats_on_a_corrupt_superblock(void **state)
{
    const char *dir = *state;
    cairn_options o;
    tu_options(&o);
    cairn_store *s;
    cairn_stats st;
    assert_cairn_ok(cairn_open(dir, &o, &s));
    populate(s);
    assert_cairn_ok(cairn_close(s));
    tu_flip_extent_byte(dir, TU_FIRST_EXTENT); /* extent 0: superblock and the first roots */

    assert_cairn_ok(cairn_open(dir, &o, &s)); /* open reads no page */
    assert_cairn_rc(cairn_stats_get(s, &st), CAIRN_CORRUPT);
    assert_cairn_ok(cairn_close(s));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        tu_dir_test(clean_store_checks_clean),
        tu_dir_test(dangling_pointer_is_reported),
        tu_dir_test(wrong_live_count_is_reported),
        tu_dir_test(unused_descriptor_of_live_objects_is_reported),
        tu_dir_test(pointer_bit_on_a_plain_word_is_reported),
        tu_dir_test(corrupt_extent_is_reported),
        tu_dir_test(stats_on_a_corrupt_superblock),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
