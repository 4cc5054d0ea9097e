/* Decode only a window of a JPEG with libjpeg-turbo (engine/data/jpegcrop.py explains when and why).
 *
 * decode_window(buf, top, left, height, width, scale, whole) -> bytearray of height*width*3 RGB bytes
 * (H x W x C), the window given in the pixels of the image decoded at 1/scale. Rows above the window are
 * skipped (entropy-decoded only), rows below it are not read unless `whole` (then entropy-decoded only), and
 * the inverse DCT, upsampling and colour conversion run only on the window's iMCU columns
 * (jpeg_skip_scanlines, jpeg_crop_scanline).
 * Raises ValueError on any libjpeg error *or warning* (a damaged stream): the caller then lets the full
 * decoder give its verdict, so a bad image is judged exactly as before.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <setjmp.h>
#include <stdio.h>
#include <string.h>

#include <jpeglib.h>

typedef struct {
    struct jpeg_error_mgr pub;
    jmp_buf escape;
    char message[JMSG_LENGTH_MAX];
} error_mgr;

static void on_error(j_common_ptr cinfo) {
    error_mgr *err = (error_mgr *)cinfo->err;
    (*cinfo->err->format_message)(cinfo, err->message);
    longjmp(err->escape, 1);
}

static void on_message(j_common_ptr cinfo, int level) {
    if (level < 0) { /* a warning: corrupt data libjpeg would paper over */
        on_error(cinfo);
    }
}

static PyObject *decode_window(PyObject *self, PyObject *args) {
    Py_buffer view;
    int top, left, height, width, scale, whole;
    if (!PyArg_ParseTuple(args, "y*iiiiip", &view, &top, &left, &height, &width, &scale, &whole)) {
        return NULL;
    }
    if (top < 0 || left < 0 || height <= 0 || width <= 0 ||
        (scale != 1 && scale != 2 && scale != 4 && scale != 8)) {
        PyBuffer_Release(&view);
        PyErr_SetString(PyExc_ValueError, "bad window or scale");
        return NULL;
    }
    struct jpeg_decompress_struct cinfo;
    error_mgr err;
    PyObject *volatile out = NULL; /* volatile: read after a longjmp */
    JSAMPLE *volatile row = NULL;
    cinfo.err = jpeg_std_error(&err.pub);
    err.pub.error_exit = on_error;
    err.pub.emit_message = on_message;
    err.message[0] = '\0';
    jpeg_create_decompress(&cinfo);
    if (setjmp(err.escape)) {
        jpeg_destroy_decompress(&cinfo);
        PyMem_Free(row);
        Py_XDECREF(out);
        PyBuffer_Release(&view);
        PyErr_Format(PyExc_ValueError, "libjpeg: %s", err.message);
        return NULL;
    }
    jpeg_mem_src(&cinfo, (const unsigned char *)view.buf, (unsigned long)view.len);
    jpeg_read_header(&cinfo, TRUE);
    if (cinfo.num_components != 1 && cinfo.num_components != 3) {
        strcpy(err.message, "not a 1- or 3-component JPEG");
        longjmp(err.escape, 1);
    }
    cinfo.out_color_space = JCS_RGB;
    cinfo.scale_num = 1;
    cinfo.scale_denom = (unsigned int)scale;
    jpeg_start_decompress(&cinfo);
    if ((JDIMENSION)(top + height) > cinfo.output_height || (JDIMENSION)(left + width) > cinfo.output_width) {
        strcpy(err.message, "window outside the image");
        longjmp(err.escape, 1);
    }
    /* one column of margin each side: chroma upsampling at the decoded span's edges treats them as the
     * image's edges, so the window's own edge pixels must lie inside the span to equal a full decode */
    JDIMENSION x0 = (JDIMENSION)(left > 0 ? left - 1 : 0);
    JDIMENSION span = (JDIMENSION)(left + width + 1) - x0;
    if (x0 + span > cinfo.output_width) {
        span = cinfo.output_width - x0;
    }
    jpeg_crop_scanline(&cinfo, &x0, &span); /* widened to iMCU columns: x0 <= left */
    row = PyMem_Malloc((size_t)span * 3);
    out = PyByteArray_FromStringAndSize(NULL, (Py_ssize_t)height * width * 3);
    if (row == NULL || out == NULL) {
        strcpy(err.message, "out of memory");
        longjmp(err.escape, 1);
    }
    if (top > 0 && jpeg_skip_scanlines(&cinfo, (JDIMENSION)top) != (JDIMENSION)top) {
        strcpy(err.message, "short image");
        longjmp(err.escape, 1);
    }
    char *dst = PyByteArray_AS_STRING(out);
    size_t offset = (size_t)(left - (int)x0) * 3, bytes = (size_t)width * 3;
    for (int r = 0; r < height; r++) {
        JSAMPROW rows[1] = {row};
        if (jpeg_read_scanlines(&cinfo, rows, 1) != 1) {
            strcpy(err.message, "short image");
            longjmp(err.escape, 1);
        }
        memcpy(dst + (size_t)r * bytes, row + offset, bytes);
    }
    /* whole: the rows below the window are entropy-decoded without their DCT and the last one read, so a
     * damaged or truncated stream fails here as it fails a full decode; else they are never decoded */
    JDIMENSION left_rows = whole ? cinfo.output_height - cinfo.output_scanline : 0;
    if (left_rows > 1 && jpeg_skip_scanlines(&cinfo, left_rows - 1) != left_rows - 1) {
        strcpy(err.message, "short image");
        longjmp(err.escape, 1);
    }
    if (cinfo.output_scanline < cinfo.output_height) {
        JSAMPROW rows[1] = {row};
        if (jpeg_read_scanlines(&cinfo, rows, 1) != 1) {
            strcpy(err.message, "short image");
            longjmp(err.escape, 1);
        }
    }
    if (whole) {
        jpeg_finish_decompress(&cinfo); /* reads to the end-of-image marker: warns on a short file */
    } else {
        jpeg_abort_decompress(&cinfo);
    }
    jpeg_destroy_decompress(&cinfo);
    PyMem_Free(row);
    PyBuffer_Release(&view);
    return out;
}

static PyMethodDef methods[] = {
    {"decode_window", decode_window, METH_VARARGS,
     "decode_window(buf, top, left, height, width, scale, whole) -> bytearray (H*W*3 RGB)"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_jpegcrop", NULL, -1, methods};

PyMODINIT_FUNC PyInit__jpegcrop(void) { return PyModule_Create(&module); }
