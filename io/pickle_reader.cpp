// pickle_reader.cpp: see pickle_reader.h. A small interpreter of pickle opcodes (the subset
// protocols 2-5 write for dicts, tuples, lists, text, bytes, numbers and numpy arrays) whose
// only "functions" are the whitelisted globals, emulated here.
#include "io/pickle_reader.h"

#include <cstring>
#include <map>
#include <set>
#include <utility>

#include "io/lwm_jax_stream.h"
#include "io/model_import.h"
#include "src/common/input_error.h"

namespace rw::io {
namespace {

constexpr std::size_t kMaxStack = std::size_t(1) << 22;  // objects on the stack at once
constexpr std::size_t kMaxMemo = std::size_t(1) << 22;   // memo entries
constexpr std::size_t kMaxLine = 256;                    // GLOBAL's module and name lines
constexpr std::size_t kMaxDims = 32;                     // numpy's own limit is 64
constexpr int64_t kMaxElements = int64_t(1) << 40;
constexpr std::size_t kMaxObjects = std::size_t(1) << 21;  // LWM's vqgan: a few thousand
constexpr int kMaxTreeDepth = 64;
constexpr int kMaxCallDepth = 8;  // jax's wrapper around numpy's reduction nests one level

enum class Kind { none, boolean, integer, floating, text, bytes, tuple, list, dict, global, array, dtype };
enum class Callable { reconstruct, ndarray, dtype, scalar, frombuffer, codecs_encode, bytes, jax_array, frozen_dict, bfloat16 };

struct Obj;
using Ref = std::shared_ptr<Obj>;

struct Obj {
  Kind kind = Kind::none;
  int64_t integer = 0;  // integer, boolean
  double floating = 0;
  std::string text;     // text; global: "module.name"; dtype and array: the numpy dtype name
  Callable callable = Callable::ndarray;  // global
  // bytes, and a built array's data (C order, little-endian)
  const uint8_t* data = nullptr;
  uint64_t size = 0;
  std::shared_ptr<const std::string> owner;
  std::vector<Ref> items;                    // tuple, list
  std::vector<std::pair<Ref, Ref>> entries;  // dict
  std::vector<int64_t> shape;                // array
  bool built = false;                        // array: state given
  char byte_order = '<';                     // dtype
};

std::string describe(const Obj& o) {
  switch (o.kind) {
    case Kind::none: return "None";
    case Kind::boolean: return "a bool";
    case Kind::integer: return "an integer";
    case Kind::floating: return "a float";
    case Kind::text: return "a string";
    case Kind::bytes: return "bytes";
    case Kind::tuple: return "a tuple";
    case Kind::list: return "a list";
    case Kind::dict: return "a dict";
    case Kind::global: return "the global " + o.text;
    case Kind::array: return o.built ? "an array" : "an array without data";
    case Kind::dtype: return "a dtype";
  }
  return "an object";
}

// numpy's dtype strings ("f4", as np.dtype.__reduce__ gives them, or the name) -> numpy name.
std::string dtype_name(const std::string& code) {
  static const std::map<std::string, std::string> names = {
      {"f2", "float16"}, {"f4", "float32"}, {"f8", "float64"}, {"i1", "int8"},   {"i2", "int16"},  {"i4", "int32"},
      {"i8", "int64"},   {"u1", "uint8"},   {"u2", "uint16"},  {"u4", "uint32"}, {"u8", "uint64"}, {"b1", "bool"}};
  const auto it = names.find(code);
  if (it != names.end()) return it->second;
  return numpy_dtype_size(code) ? code : "";
}

struct Global {
  const char* module;
  const char* name;
  Callable callable;
};

constexpr Global kWhitelist[] = {
    {"numpy.core.multiarray", "_reconstruct", Callable::reconstruct},
    {"numpy._core.multiarray", "_reconstruct", Callable::reconstruct},
    {"numpy", "ndarray", Callable::ndarray},
    {"numpy", "dtype", Callable::dtype},
    {"numpy.core.multiarray", "scalar", Callable::scalar},
    {"numpy._core.multiarray", "scalar", Callable::scalar},
    {"numpy.core.numeric", "_frombuffer", Callable::frombuffer},
    {"numpy._core.numeric", "_frombuffer", Callable::frombuffer},
    {"_codecs", "encode", Callable::codecs_encode},
    {"builtins", "bytes", Callable::bytes},
    {"__builtin__", "bytes", Callable::bytes},
    {"jax._src.array", "_reconstruct_array", Callable::jax_array},
    {"jax._src.device_array", "reconstruct_device_array", Callable::jax_array},  // jax 0.3's DeviceArray
    {"flax.core.frozen_dict", "FrozenDict", Callable::frozen_dict},
    {"ml_dtypes", "bfloat16", Callable::bfloat16},
    {"ml_dtypes._ml_dtypes_ext", "bfloat16", Callable::bfloat16},
};

class Reader {
 public:
  Reader(const uint8_t* bytes, uint64_t size, const std::string& file) : b_(bytes), n_(size), file_(file) {}
  // Every object's links are cut before any is freed: a cyclic structure (a list appended to
  // itself) is not leaked and a deeply nested one is not freed by deep recursion.
  ~Reader() {
    for (const Ref& o : all_) {
      o->items.clear();
      o->entries.clear();
    }
  }
  Reader(const Reader&) = delete;
  Reader& operator=(const Reader&) = delete;
  Ref run();
  Ref make(Kind kind) {
    if (all_.size() >= kMaxObjects) fail("more than " + std::to_string(kMaxObjects) + " objects");
    all_.push_back(std::make_shared<Obj>());
    all_.back()->kind = kind;
    return all_.back();
  }

 private:
  [[noreturn]] void fail(const std::string& why) const {
    throw InputError("'" + file_ + "': pickle byte " + std::to_string(op_at_) + ": " + why);
  }
  const uint8_t* take(uint64_t count) {
    if (count > n_ - pos_)
      fail("truncated (" + std::to_string(count) + " bytes declared, " + std::to_string(n_ - pos_) + " left)");
    const uint8_t* p = b_ + pos_;
    pos_ += count;
    return p;
  }
  uint64_t le(int width) {
    const uint8_t* p = take(static_cast<uint64_t>(width));
    uint64_t v = 0;
    for (int i = width - 1; i >= 0; --i) v = (v << 8) | p[i];
    return v;
  }
  std::string line() {
    std::string s;
    while (true) {
      const char c = static_cast<char>(*take(1));
      if (c == '\n') return s;
      if (s.size() >= kMaxLine) fail("GLOBAL name longer than " + std::to_string(kMaxLine) + " characters");
      s += c;
    }
  }
  std::size_t floor() const { return marks_.empty() ? 0 : marks_.back(); }
  void push(Ref o) {
    if (stack_.size() >= kMaxStack) fail("more than " + std::to_string(kMaxStack) + " objects on the stack");
    stack_.push_back(std::move(o));
  }
  Ref pop() {
    if (stack_.size() <= floor()) fail("the stack is empty");
    Ref o = std::move(stack_.back());
    stack_.pop_back();
    return o;
  }
  Ref& top() {
    if (stack_.size() <= floor()) fail("the stack is empty");
    return stack_.back();
  }
  std::vector<Ref> pop_mark() {
    if (marks_.empty()) fail("no MARK to pop to");
    const std::size_t m = marks_.back();
    marks_.pop_back();
    std::vector<Ref> items(stack_.begin() + static_cast<std::ptrdiff_t>(m), stack_.end());
    stack_.resize(m);
    return items;
  }
  void memo_put(uint64_t index) {
    if (memo_.size() >= kMaxMemo && !memo_.count(index)) fail("more than " + std::to_string(kMaxMemo) + " memo entries");
    memo_[index] = top();
  }
  Ref memo_get(uint64_t index) const {
    const auto it = memo_.find(index);
    if (it == memo_.end()) fail("memo entry " + std::to_string(index) + " is read before it is written");
    return it->second;
  }
  Ref bytes_view(uint64_t count) {
    Ref o = make(Kind::bytes);
    o->data = take(count);
    o->size = count;
    return o;
  }
  Ref text(uint64_t count) {
    const uint8_t* p = take(count);
    Ref o = make(Kind::text);
    o->text.assign(reinterpret_cast<const char*>(p), count);
    return o;
  }
  void add_items(Obj& dict, const std::vector<Ref>& kv) {
    if (dict.kind != Kind::dict) fail("SETITEMS on " + describe(dict));
    if (kv.size() % 2) fail("SETITEMS with an odd number of items");
    for (std::size_t i = 0; i < kv.size(); i += 2) dict.entries.emplace_back(kv[i], kv[i + 1]);
  }
  Ref global(const std::string& module, const std::string& name);
  Ref call(const Ref& f, const Ref& args, int depth);
  void build(const Ref& obj, const Ref& state);
  Ref dtype_of(const Ref& d, const std::string& what);
  void finish_array(Obj& a, const Ref& shape, const Ref& dtype, bool fortran, const Ref& data);

  const uint8_t* b_;
  uint64_t n_;
  std::string file_;
  uint64_t pos_ = 0, op_at_ = 0;
  std::vector<Ref> stack_;
  std::vector<std::size_t> marks_;
  std::map<uint64_t, Ref> memo_;
  std::vector<Ref> all_;
};

Ref Reader::global(const std::string& module, const std::string& name) {
  for (const Global& g : kWhitelist)
    if (module == g.module && name == g.name) {
      Ref o = make(Kind::global);
      o->text = module + "." + name;
      o->callable = g.callable;
      return o;
    }
  fail("the global " + module + "." + name +
       " is not allowed (only numpy arrays, dicts and the globals that rebuild them are read; nothing is executed)");
}

Ref Reader::dtype_of(const Ref& d, const std::string& what) {
  if (d->kind != Kind::dtype) fail(what + " is " + describe(*d) + ", not a numpy dtype");
  return d;
}

void Reader::finish_array(Obj& a, const Ref& shape, const Ref& dtype, bool fortran, const Ref& data) {
  if (shape->kind != Kind::tuple) fail("an array's shape is " + describe(*shape) + ", not a tuple");
  if (shape->items.size() > kMaxDims) fail("an array of " + std::to_string(shape->items.size()) + " dimensions");
  int64_t count = 1;
  a.shape.clear();
  for (const Ref& d : shape->items) {
    if (d->kind != Kind::integer || d->integer < 0) fail("an array's shape holds " + describe(*d) + " (sizes >= 0 expected)");
    if (d->integer > kMaxElements || (d->integer > 0 && count > kMaxElements / d->integer))
      fail("an array's declared shape has more than 2^40 elements");
    count *= d->integer;
    a.shape.push_back(d->integer);
  }
  const Obj& t = *dtype_of(dtype, "an array's dtype");
  const int64_t item = numpy_dtype_size(t.text);
  a.text = t.text;
  if (data->kind == Kind::list) fail("an object array (a list of Python objects) is not a numeric array");
  if (data->kind != Kind::bytes) fail("an array's data is " + describe(*data) + ", not bytes");
  if (static_cast<uint64_t>(count) * static_cast<uint64_t>(item) != data->size)
    fail("an array of " + std::to_string(count) + " " + t.text + " elements holds " + std::to_string(data->size) + " bytes");
  a.data = data->data;
  a.size = data->size;
  a.owner = data->owner;
  const bool swap = t.byte_order == '>' && item > 1;
  const bool reorder = fortran && a.shape.size() > 1 && count > 1;
  if (swap || reorder) {
    auto copy = std::make_shared<std::string>(a.size, '\0');
    uint8_t* out = reinterpret_cast<uint8_t*>(copy->data());
    const std::size_t rank = a.shape.size();
    std::vector<int64_t> index(rank, 0);
    for (int64_t c = 0; c < count; ++c) {  // c: the C-order position; index: its coordinates
      int64_t src = c;
      if (reorder) {
        src = 0;
        for (std::size_t k = rank; k-- > 0;) src = src * a.shape[k] + index[k];
        for (std::size_t k = rank; k-- > 0;) {
          if (++index[k] < a.shape[k]) break;
          index[k] = 0;
        }
      }
      const uint8_t* from = a.data + src * item;
      uint8_t* to = out + c * item;
      for (int64_t i = 0; i < item; ++i) to[i] = swap ? from[item - 1 - i] : from[i];
    }
    a.owner = copy;
    a.data = out;
  }
  a.built = true;
}

Ref Reader::call(const Ref& f, const Ref& args, int depth) {
  if (depth > kMaxCallDepth) fail("reductions nested deeper than " + std::to_string(kMaxCallDepth));
  if (f->kind != Kind::global) fail("REDUCE calls " + describe(*f) + ", not a global");
  if (args->kind != Kind::tuple) fail("REDUCE's arguments are " + describe(*args) + ", not a tuple");
  const std::vector<Ref>& a = args->items;
  auto need = [&](bool ok) {
    if (!ok) fail("unexpected arguments to " + f->text);
  };
  switch (f->callable) {
    case Callable::reconstruct: {  // numpy's _reconstruct(ndarray, (0,), b'b'): an empty array for BUILD
      need(a.size() == 3 && a[0]->kind == Kind::global && a[0]->callable == Callable::ndarray);
      return make(Kind::array);
    }
    case Callable::dtype: {  // np.dtype('f4', align, copy) or np.dtype(bfloat16 type, ...)
      need(!a.empty());
      Ref d = make(Kind::dtype);
      if (a[0]->kind == Kind::global && a[0]->callable == Callable::bfloat16) {
        d->text = "bfloat16";
      } else if (a[0]->kind == Kind::text || a[0]->kind == Kind::bytes) {
        const std::string code = a[0]->kind == Kind::text ? a[0]->text : std::string(reinterpret_cast<const char*>(a[0]->data), a[0]->size);
        d->text = dtype_name(code);
        if (d->text.empty())
          fail("dtype '" + code.substr(0, 32) + "' is not a numeric dtype (bfloat16 arrays are read when their dtype is ml_dtypes.bfloat16)");
      } else {
        fail("unexpected arguments to numpy.dtype");
      }
      return d;
    }
    case Callable::scalar: {  // numpy scalar(dtype, bytes): a 0-d array
      need(a.size() == 2);
      Ref s = make(Kind::array);
      finish_array(*s, make(Kind::tuple), a[0], false, a[1]);
      return s;
    }
    case Callable::frombuffer: {  // _frombuffer(buffer, dtype, shape, order)
      need(a.size() == 4 && a[3]->kind == Kind::text && (a[3]->text == "C" || a[3]->text == "F"));
      Ref r = make(Kind::array);
      finish_array(*r, a[2], a[1], a[3]->text == "F", a[0]);
      return r;
    }
    case Callable::codecs_encode: {  // _codecs.encode(text, 'latin1'): each character one byte
      need(a.size() == 2 && a[0]->kind == Kind::text && a[1]->kind == Kind::text &&
           (a[1]->text == "latin1" || a[1]->text == "latin-1"));
      const std::string& s = a[0]->text;
      auto bytes = std::make_shared<std::string>();
      bytes->reserve(s.size());
      for (std::size_t i = 0; i < s.size();) {
        const uint8_t c = static_cast<uint8_t>(s[i]);
        if (c < 0x80) {
          bytes->push_back(static_cast<char>(c));
          i += 1;
        } else if ((c == 0xC2 || c == 0xC3) && i + 1 < s.size() && (static_cast<uint8_t>(s[i + 1]) & 0xC0) == 0x80) {
          bytes->push_back(static_cast<char>(((c & 0x03) << 6) | (static_cast<uint8_t>(s[i + 1]) & 0x3F)));
          i += 2;
        } else {
          fail("_codecs.encode of text that is not latin-1 (byte " + std::to_string(i) + " of the string)");
        }
      }
      Ref o = make(Kind::bytes);
      o->owner = bytes;
      o->data = reinterpret_cast<const uint8_t*>(bytes->data());
      o->size = bytes->size();
      return o;
    }
    case Callable::bytes: {  // bytes(): protocol 2's empty bytes
      need(a.empty());
      return make(Kind::bytes);
    }
    case Callable::jax_array: {  // jax's _reconstruct_array / reconstruct_device_array(fun, args, arr_state, aval_state)
      need(a.size() == 4);
      Ref r = call(a[0], a[1], depth + 1);
      build(r, a[2]);
      if (r->kind != Kind::array || !r->built) fail("jax._src.array._reconstruct_array does not rebuild a numpy array");
      return r;
    }
    case Callable::frozen_dict: {  // FrozenDict(dict)
      need(a.size() <= 1 && (a.empty() || a[0]->kind == Kind::dict));
      return a.empty() ? make(Kind::dict) : a[0];
    }
    case Callable::ndarray:
    case Callable::bfloat16: break;
  }
  fail(f->text + " is not called by the pickles that are read");
}

void Reader::build(const Ref& obj, const Ref& state) {
  if (obj->kind == Kind::array && !obj->built) {
    // numpy's state: (version, shape, dtype, is_fortran, data) or, older, without the version.
    if (state->kind != Kind::tuple || (state->items.size() != 5 && state->items.size() != 4))
      fail("an array's state is " + describe(*state) + ", not numpy's 5-tuple");
    const std::vector<Ref>& s = state->items;
    const std::size_t o = s.size() == 5 ? 1 : 0;
    if (s[o + 2]->kind != Kind::boolean && s[o + 2]->kind != Kind::integer) fail("an array's Fortran flag is " + describe(*s[o + 2]));
    finish_array(*obj, s[o], s[o + 1], s[o + 2]->integer != 0, s[o + 3]);
    return;
  }
  if (obj->kind == Kind::dtype) {
    // numpy's state: (version, byte order, subarray, names, fields, elsize, alignment, flags[, metadata])
    if (state->kind != Kind::tuple || state->items.size() < 2 || state->items[1]->kind != Kind::text)
      fail("a dtype's state is " + describe(*state) + ", not numpy's tuple");
    const std::vector<Ref>& s = state->items;
    for (std::size_t i = 2; i < 4 && i < s.size(); ++i)
      if (s[i]->kind != Kind::none) fail("a structured or subarray dtype is not a numeric dtype");
    const std::string& order = s[1]->text;
    if (order != "<" && order != ">" && order != "|" && order != "=") fail("a dtype's byte order is '" + order.substr(0, 8) + "'");
    obj->byte_order = order == ">" ? '>' : '<';
    return;
  }
  if (obj->kind == Kind::dict && state->kind == Kind::dict) {
    obj->entries.insert(obj->entries.end(), state->entries.begin(), state->entries.end());
    return;
  }
  fail("BUILD on " + describe(*obj) + " with " + describe(*state));
}

Ref Reader::run() {
  while (true) {
    op_at_ = pos_;
    if (pos_ >= n_) fail("the pickle ends without STOP");
    const uint8_t op = *take(1);
    switch (op) {
      case 0x80: {  // PROTO
        const uint64_t v = le(1);
        if (v < 2 || v > 5) fail("pickle protocol " + std::to_string(v) + " (2 to 5 are read)");
        break;
      }
      case 0x95: {  // FRAME: a length hint
        const uint64_t len = le(8);
        if (len > n_ - pos_) fail("a frame of " + std::to_string(len) + " bytes, " + std::to_string(n_ - pos_) + " left");
        break;
      }
      case '.': {  // STOP
        Ref result = pop();
        if (!marks_.empty()) fail("STOP inside a MARK");
        return result;
      }
      case '(': marks_.push_back(stack_.size()); break;  // MARK
      case '0': pop(); break;                            // POP
      case '1': pop_mark(); break;                       // POP_MARK
      case '2': push(top()); break;                      // DUP
      case '}': push(make(Kind::dict)); break;           // EMPTY_DICT
      case ']': push(make(Kind::list)); break;           // EMPTY_LIST
      case ')': push(make(Kind::tuple)); break;          // EMPTY_TUPLE
      case 'd': {                                        // DICT
        Ref d = make(Kind::dict);
        add_items(*d, pop_mark());
        push(d);
        break;
      }
      case 'l':    // LIST
      case 't': {  // TUPLE
        Ref t = make(op == 'l' ? Kind::list : Kind::tuple);
        t->items = pop_mark();
        push(t);
        break;
      }
      case 0x85:
      case 0x86:
      case 0x87: {  // TUPLE1-3
        Ref t = make(Kind::tuple);
        t->items.resize(op - 0x84);
        for (std::size_t i = t->items.size(); i-- > 0;) t->items[i] = pop();
        push(t);
        break;
      }
      case 's': {  // SETITEM
        Ref v = pop();
        Ref k = pop();
        add_items(*top(), {k, v});
        break;
      }
      case 'u': {  // SETITEMS
        std::vector<Ref> kv = pop_mark();
        add_items(*top(), kv);
        break;
      }
      case 'a': {  // APPEND
        Ref v = pop();
        Obj& l = *top();
        if (l.kind != Kind::list) fail("APPEND to " + describe(l));
        l.items.push_back(v);
        break;
      }
      case 'e': {  // APPENDS
        std::vector<Ref> items = pop_mark();
        Obj& l = *top();
        if (l.kind != Kind::list) fail("APPENDS to " + describe(l));
        l.items.insert(l.items.end(), items.begin(), items.end());
        break;
      }
      case 'J':
      case 'K':
      case 'M': {  // BININT, BININT1, BININT2
        Ref i = make(Kind::integer);
        i->integer = op == 'J' ? static_cast<int64_t>(static_cast<int32_t>(le(4))) : static_cast<int64_t>(le(op == 'K' ? 1 : 2));
        push(i);
        break;
      }
      case 0x8a: {  // LONG1
        const uint64_t n = le(1);
        if (n > 8) fail("an integer of " + std::to_string(n) + " bytes");
        Ref i = make(Kind::integer);
        if (n > 0) {
          uint64_t v = le(static_cast<int>(n));
          if (n < 8 && (v >> (8 * n - 1)) & 1) v |= ~uint64_t(0) << (8 * n);  // sign-extend
          i->integer = static_cast<int64_t>(v);
        }
        push(i);
        break;
      }
      case 'N': push(make(Kind::none)); break;
      case 0x88:
      case 0x89: {  // NEWTRUE, NEWFALSE
        Ref b = make(Kind::boolean);
        b->integer = op == 0x88;
        push(b);
        break;
      }
      case 'G': {  // BINFLOAT (big-endian)
        const uint8_t* p = take(8);
        uint64_t v = 0;
        for (int i = 0; i < 8; ++i) v = (v << 8) | p[i];
        Ref f = make(Kind::floating);
        std::memcpy(&f->floating, &v, 8);
        push(f);
        break;
      }
      case 0x8c: push(text(le(1))); break;  // SHORT_BINUNICODE
      case 'X': push(text(le(4))); break;   // BINUNICODE
      case 0x8d: push(text(le(8))); break;  // BINUNICODE8
      case 'U':                             // SHORT_BINSTRING (Python 2 str: bytes)
      case 'C': push(bytes_view(le(1))); break;  // SHORT_BINBYTES
      case 'T': {                                // BINSTRING
        const uint64_t n = le(4);
        if (n >> 31) fail("a string of negative length");
        push(bytes_view(n));
        break;
      }
      case 'B': push(bytes_view(le(4))); break;  // BINBYTES
      case 0x8e:                                  // BINBYTES8
      case 0x96: push(bytes_view(le(8))); break;  // BYTEARRAY8
      case 'c': {                                 // GLOBAL
        const std::string module = line();
        const std::string name = line();
        push(global(module, name));
        break;
      }
      case 0x93: {  // STACK_GLOBAL
        Ref name = pop();
        Ref module = pop();
        if (module->kind != Kind::text || name->kind != Kind::text) fail("STACK_GLOBAL on " + describe(*module) + " and " + describe(*name));
        push(global(module->text.substr(0, kMaxLine), name->text.substr(0, kMaxLine)));
        break;
      }
      case 'R': {  // REDUCE
        Ref args = pop();
        Ref f = pop();
        push(call(f, args, 0));
        break;
      }
      case 'b': {  // BUILD
        Ref state = pop();
        build(top(), state);
        break;
      }
      case 'q': memo_put(le(1)); break;  // BINPUT
      case 'r': memo_put(le(4)); break;  // LONG_BINPUT
      case 0x94: memo_put(memo_.size()); break;  // MEMOIZE
      case 'h': push(memo_get(le(1))); break;    // BINGET
      case 'j': push(memo_get(le(4))); break;    // LONG_BINGET
      case 0x97:
      case 0x98: fail("out-of-band buffers (pickle protocol 5 with buffer_callback) are not read");
      case 0x81:
      case 0x92:
      case 'i':
      case 'o': fail("an opcode that creates class instances (NEWOBJ, INST, OBJ) is not allowed");
      case 'p':
      case 'g':
      case 'I':
      case 'L':
      case 'F':
      case 'S':
      case 'V': fail("a protocol-0 text opcode ('" + std::string(1, static_cast<char>(op)) + "'): protocols 2 to 5 are read");
      default: {
        static const char* hex = "0123456789abcdef";
        fail(std::string("unsupported opcode 0x") + hex[op >> 4] + hex[op & 15]);
      }
    }
  }
}

// Each dict is walked once (a dict reached twice, through the memo, is refused: that bounds the
// walk by the file's size and excludes cycles); an array may be a leaf more than once.
void walk(const Ref& node, std::vector<std::string>& path, int depth, const std::string& file, PickleTree& out,
          std::set<const Obj*>& seen) {
  auto where = [&] {
    std::string s;
    for (const std::string& k : path) s += (s.empty() ? "" : "/") + k;
    return s.empty() ? std::string("the root") : s;
  };
  if (depth > kMaxTreeDepth) throw InputError("'" + file + "': " + where() + ": dicts nested deeper than " + std::to_string(kMaxTreeDepth));
  if (node->kind == Kind::dict) {
    if (!seen.insert(node.get()).second)
      throw InputError("'" + file + "': " + where() + " is a dict met before (a shared or cyclic tree is not a parameter tree)");
    for (const auto& [k, v] : node->entries) {
      if (k->kind != Kind::text) throw InputError("'" + file + "': " + where() + " has a key that is " + describe(*k) + ", not a string");
      path.push_back(k->text);
      walk(v, path, depth + 1, file, out, seen);
      path.pop_back();
    }
    return;
  }
  if (node->kind == Kind::array && node->built && depth > 0) {
    PickleArray a;
    a.key = path;
    a.shape = node->shape;
    a.dtype = node->text;
    a.data = node->data;
    a.bytes = node->size;
    if (node->owner) out.owned.push_back(node->owner);
    out.arrays.push_back(std::move(a));
    return;
  }
  throw InputError("'" + file + "': " + where() + " is " + describe(*node) + ", not " + (depth ? "an array or a dict" : "a dict of arrays"));
}

}  // namespace

int64_t PickleArray::count() const {
  int64_t c = 1;
  for (int64_t d : shape) c *= d;
  return c;
}

std::string PickleArray::key_text() const {
  std::string s;
  for (const std::string& k : key) s += (s.empty() ? "" : "/") + k;
  return s;
}

bool looks_like_pickle(const uint8_t* bytes, uint64_t size) {
  return size >= 2 && bytes[0] == 0x80 && bytes[1] >= 2 && bytes[1] <= 5;
}

PickleTree read_pickle_arrays(const uint8_t* bytes, uint64_t size, const std::string& file) {
  if (!looks_like_pickle(bytes, size)) throw InputError("'" + file + "' is not a pickle of protocol 2 to 5 (it does not start with PROTO)");
  Reader reader(bytes, size, file);
  const Ref root = reader.run();
  PickleTree tree;
  std::vector<std::string> path;
  std::set<const Obj*> seen;
  walk(root, path, 0, file, tree, seen);
  return tree;
}

void pickle_array_to_f32(const PickleArray& a, float* out) {
  const int64_t n = a.count();
  if (a.dtype == "float32") return convert_to_f32(a.data, SourceDtype::f32, n, out);
  if (a.dtype == "float16") return convert_to_f32(a.data, SourceDtype::f16, n, out);
  if (a.dtype == "bfloat16") return convert_to_f32(a.data, SourceDtype::bf16, n, out);
  if (a.dtype == "float64") {
    for (int64_t i = 0; i < n; ++i) {
      double v;
      std::memcpy(&v, a.data + i * 8, 8);
      out[i] = static_cast<float>(v);
    }
    return;
  }
  throw InputError(a.key_text() + " has dtype " + a.dtype + " (float32, float16, bfloat16 or float64 expected)");
}

}  // namespace rw::io
