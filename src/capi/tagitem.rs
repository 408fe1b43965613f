//! `tagitem.h`: tag lists, the `(tag, value)` arrays through which RSPLIB's `*_tags` calls
//! (`rserpool-internals.h`) take extra settings, and the helpers RSPLIB programs use on
//! them (RSPLIB ships these in its `libtdtagitem`; librserpool carries them, so that
//! `-lrserpool` or `-lrsplib` is all a program links).
//!
//! A list is an array of [`TagItem`] ended by `TAG_DONE`. Three tags steer the walk instead
//! of carrying a value: `TAG_IGNORE` (this item is skipped), `TAG_SKIP` (this item and the
//! `Data` items after it are skipped) and `TAG_MORE` (the list goes on at the array `Data`
//! points to). Walks are bounded (65536 entries), so a list that chains back to itself ends
//! instead of looping.

use libc::{c_uint, c_ulong, size_t};

/// A tag: what an item sets.
pub type tag_t = c_uint;
/// The value of a tag item (a number, or a pointer cast to it).
pub type tagdata_t = c_ulong;

/// One item of a tag list.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TagItem {
    /// What the item sets (`TAG_DONE` ends the list).
    pub Tag: tag_t,
    /// Its value.
    pub Data: tagdata_t,
}

/// Ends a tag list.
pub const TAG_DONE: tag_t = 0;
/// Ends a tag list (the same as `TAG_DONE`).
pub const TAG_END: tag_t = 0;
/// An item to pass over.
pub const TAG_IGNORE: tag_t = 1;
/// The list goes on at the array `Data` points to (NULL: it ends here).
pub const TAG_MORE: tag_t = 2;
/// This item and the `Data` items after it are passed over.
pub const TAG_SKIP: tag_t = 3;
/// The first tag of user data; the library's own tags are above it.
pub const TAG_USER: tag_t = 1_000_000;

/// The most array entries one walk of a list visits (a chained list that loops ends here).
pub(crate) const MAX_STEPS: usize = 1 << 16;

/// The first item carrying a value at or after `p`: control items are followed or skipped.
/// NULL at the end of the list.
///
/// # Safety
/// `p` is NULL or points into a tag list whose control items describe valid memory.
unsafe fn first_value(mut p: *mut TagItem, steps: &mut usize) -> *mut TagItem {
    while !p.is_null() && *steps < MAX_STEPS {
        *steps += 1;
        // SAFETY: p is a valid item of the list, as the caller promises.
        let item = unsafe { *p };
        match item.Tag {
            TAG_DONE => return std::ptr::null_mut(),
            TAG_MORE => p = item.Data as *mut TagItem,
            TAG_IGNORE => p = p.wrapping_add(1),
            TAG_SKIP => p = p.wrapping_add(1).wrapping_add(item.Data as usize),
            _ => return p,
        }
    }
    std::ptr::null_mut()
}

/// The items of a list that carry values, in order.
///
/// # Safety
/// As [`first_value`]; the list stays valid while the iterator is used.
pub(crate) unsafe fn values(list: *mut TagItem) -> impl Iterator<Item = *mut TagItem> {
    let mut steps = 0;
    // SAFETY: the caller's promise.
    let mut next = unsafe { first_value(list, &mut steps) };
    std::iter::from_fn(move || {
        if next.is_null() {
            return None;
        }
        let current = next;
        // SAFETY: current is a value item; the one after it belongs to the list.
        next = unsafe { first_value(current.wrapping_add(1), &mut steps) };
        Some(current)
    })
}

/// The value of `tag` in a list (its first item with that tag), if it has one.
///
/// # Safety
/// As [`values`].
pub(crate) unsafe fn find_data(list: *mut TagItem, tag: tag_t) -> Option<tagdata_t> {
    // SAFETY: the caller's promise.
    unsafe { values(list) }
        // SAFETY: every item values() yields is valid.
        .map(|p| unsafe { *p })
        .find(|i| i.Tag == tag)
        .map(|i| i.Data)
}

/// Allocates a tag list of `items` entries, all `TAG_DONE` (zeroed); free it with
/// `tagListFree` (or `free`). NULL when out of memory or for 0 items.
#[unsafe(no_mangle)]
pub extern "C" fn tagListAllocate(items: size_t) -> *mut TagItem {
    if items == 0 {
        return std::ptr::null_mut();
    }
    // SAFETY: calloc checks the size product itself.
    unsafe { libc::calloc(items, std::mem::size_of::<TagItem>()).cast() }
}

/// Frees a list from `tagListAllocate`, `tagListDuplicate` or `tagListDuplicateFilter`.
/// NULL is ignored.
///
/// # Safety
/// `tagList` is NULL or such a list, not freed yet.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tagListFree(tagList: *mut TagItem) {
    // SAFETY: the caller's promise; free(NULL) does nothing.
    unsafe { libc::free(tagList.cast()) }
}

/// The number of entries of the array `tagList` up to and including its `TAG_DONE` (chained
/// arrays not counted); 0 for NULL.
///
/// # Safety
/// `tagList` is NULL or an array ended by `TAG_DONE`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tagListGetSize(tagList: *mut TagItem) -> size_t {
    if tagList.is_null() {
        return 0;
    }
    let mut n = 0;
    // SAFETY: the array is ended by TAG_DONE, as the caller promises.
    while n < MAX_STEPS && unsafe { (*tagList.add(n)).Tag } != TAG_DONE {
        n += 1;
    }
    n + 1
}

/// A copy of the array `tagList` (up to its `TAG_DONE`), to free with `tagListFree`; NULL for
/// NULL or when out of memory.
///
/// # Safety
/// As `tagListGetSize`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tagListDuplicate(tagList: *mut TagItem) -> *mut TagItem {
    // SAFETY: the caller's promise.
    let n = unsafe { tagListGetSize(tagList) };
    let copy = tagListAllocate(n);
    if !copy.is_null() {
        // SAFETY: both arrays have n entries (the last copied one is TAG_DONE, or the
        // copy's zeroed end when the bound cut the walk).
        unsafe { std::ptr::copy_nonoverlapping(tagList, copy, n - 1) };
    }
    copy
}

/// A new list of the items of the array `tagList` whose tag is in `filterArray` (ended by
/// `TAG_DONE`), in their order, then `TAG_DONE`; free it with `tagListFree`. NULL for a NULL
/// list or when out of memory; a NULL filter keeps nothing.
///
/// # Safety
/// As `tagListGetSize`; `filterArray` is NULL or an array of tags ended by `TAG_DONE`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tagListDuplicateFilter(
    tagList: *mut TagItem,
    filterArray: *const tag_t,
) -> *mut TagItem {
    let mut filter = Vec::new();
    // SAFETY: the filter is ended by TAG_DONE, as the caller promises.
    while !filterArray.is_null()
        && filter.len() < MAX_STEPS
        && unsafe { *filterArray.add(filter.len()) } != TAG_DONE
    {
        // SAFETY: as above.
        filter.push(unsafe { *filterArray.add(filter.len()) });
    }
    // SAFETY: the caller's promise.
    let n = unsafe { tagListGetSize(tagList) };
    let copy = tagListAllocate(n);
    if copy.is_null() {
        return copy;
    }
    let mut j = 0;
    for i in 0..n - 1 {
        // SAFETY: i is inside the array, j <= i inside the copy.
        let item = unsafe { *tagList.add(i) };
        if filter.contains(&item.Tag) {
            // SAFETY: as above.
            unsafe { *copy.add(j) = item };
            j += 1;
        }
    }
    copy
}

/// The next item carrying a value after `tagList` (the current one), following `TAG_MORE`
/// and passing over `TAG_IGNORE` and `TAG_SKIP`; NULL at the end. Called on a control item,
/// it starts there.
///
/// # Safety
/// `tagList` is NULL or points into a valid tag list.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tagListNext(tagList: *mut TagItem) -> *mut TagItem {
    if tagList.is_null() {
        return tagList;
    }
    // SAFETY: the caller's promise.
    let tag = unsafe { (*tagList).Tag };
    let start = match tag {
        TAG_DONE | TAG_MORE | TAG_IGNORE | TAG_SKIP => tagList,
        _ => tagList.wrapping_add(1),
    };
    // SAFETY: the caller's promise.
    unsafe { first_value(start, &mut 0) }
}

/// The first item of the list with tag `tag`, or NULL.
///
/// # Safety
/// `tagList` is NULL or a valid tag list.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tagListFind(tagList: *mut TagItem, tag: tag_t) -> *mut TagItem {
    // SAFETY: the caller's promise; values() yields valid items.
    unsafe { values(tagList) }
        .find(|&p| unsafe { (*p).Tag } == tag)
        .unwrap_or(std::ptr::null_mut())
}

/// The value of tag `tag` in the list, or `defaultValue` when it has none.
///
/// # Safety
/// `tagList` is NULL or a valid tag list.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tagListGetData(
    tagList: *mut TagItem,
    tag: tag_t,
    defaultValue: tagdata_t,
) -> tagdata_t {
    // SAFETY: the caller's promise.
    unsafe { find_data(tagList, tag) }.unwrap_or(defaultValue)
}

/// Sets the value of the first item with tag `tag` and returns it; NULL (and no change)
/// when the list has none.
///
/// # Safety
/// `tagList` is NULL or a valid, writable tag list.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tagListSetData(
    tagList: *mut TagItem,
    tag: tag_t,
    value: tagdata_t,
) -> *mut TagItem {
    // SAFETY: the caller's promise.
    let p = unsafe { tagListFind(tagList, tag) };
    if !p.is_null() {
        // SAFETY: p is an item of the writable list.
        unsafe { (*p).Data = value };
    }
    p
}

/// Prints the list's items (number, tag, value in decimal and hex) to `fd`.
///
/// # Safety
/// `tagList` is NULL or a valid tag list; `fd` is NULL (nothing printed) or an open `FILE`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tagListPrint(tagList: *mut TagItem, fd: *mut libc::FILE) {
    if fd.is_null() {
        return;
    }
    let mut text = String::from("TagList: ");
    if tagList.is_null() {
        text.push_str("(empty)\n");
    } else {
        text.push('\n');
        // SAFETY: the caller's promise; values() yields valid items.
        for (n, p) in unsafe { values(tagList) }.enumerate() {
            let i = unsafe { *p };
            text.push_str(&format!(
                "   {:5}: tag {:9} -> {:9} (${:08x})\n",
                n + 1,
                i.Tag,
                i.Data,
                i.Data
            ));
        }
    }
    if let Ok(c) = std::ffi::CString::new(text) {
        // SAFETY: a live string to the program's FILE.
        unsafe { libc::fputs(c.as_ptr(), fd) };
    }
}
