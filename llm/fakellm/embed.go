package fakellm

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"strings"

	"github.com/qagen/qagen/llm"
)

// Embedding limits, as the real APIs have them.
const (
	maxGeminiEmbedBatch = 100
	maxOpenAIEmbedBatch = 2048
	maxEmbedDimensions  = 8192
)

// embedDimensions is the vector length of an answer: the requested one,
// else the model's usual size.
func embedDimensions(model string, requested int) int {
	if requested > 0 {
		return requested
	}
	m := strings.ToLower(model)
	switch {
	case strings.Contains(m, "gemini-embedding"), strings.Contains(m, "text-embedding-3-large"):
		return 3072
	case strings.Contains(m, "text-embedding-3-small"), strings.Contains(m, "ada-002"):
		return 1536
	}
	return llm.OfflineEmbeddingDimensions
}

// embedCall is an embedding request after parsing.
type embedCall struct {
	texts []string
	dims  int
}

// embedResult is the 200 answer to an embedding request.
type embedResult struct {
	// vecs is nil for an injected empty answer.
	vecs [][]float32
	// in is the texts' tokens.
	in int
	// malformed says the body must be cut off.
	malformed bool
}

// embedAnswer runs an embedding request through the gate and returns its
// answer; ok false when the gate answered.
func (s *Server) embedAnswer(w http.ResponseWriter, r *http.Request, d dialect, c *call, e embedCall) (res embedResult, ok bool) {
	for _, t := range e.texts {
		res.in += Tokens(t)
	}
	// Embeddings have no output tokens: the window entry keeps the input's.
	_, fault, ev, ok := s.gate(w, r, d, c, res.in)
	if !ok {
		return res, false
	}
	switch fault {
	case FaultEmpty:
		s.countError(string(FaultEmpty))
		ev(http.StatusOK, "injected empty")
		return res, true
	case FaultMalformed:
		s.countError(string(FaultMalformed))
		res.malformed = true
	}
	res.vecs = make([][]float32, len(e.texts))
	for i, t := range e.texts {
		res.vecs[i] = llm.HashEmbedding(t, e.dims)
	}
	s.mu.Lock()
	s.stats.EmbedInputTokens += int64(res.in)
	if !res.malformed {
		s.stats.EmbeddedTexts += int64(len(e.texts))
	}
	s.mu.Unlock()
	if res.malformed {
		ev(http.StatusOK, "injected malformed")
	} else {
		ev(http.StatusOK, fmt.Sprintf("ok (%d texts, %d dimensions)", len(e.texts), e.dims))
	}
	return res, true
}

func (s *Server) countEmbedRequest(api string) {
	s.mu.Lock()
	s.stats.EmbedRequests[api]++
	s.mu.Unlock()
}

// writeMaybeCut writes a 200 JSON answer, cut off a little past the middle
// when malformed.
func writeMaybeCut(w http.ResponseWriter, v any, malformed bool) {
	if !malformed {
		writeJSON(w, http.StatusOK, v)
		return
	}
	b, _ := json.Marshal(v)
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	w.WriteHeader(http.StatusOK)
	w.Write(b[:cutPoint(string(b))])
}

// geminiEmbedRequest is one embedContent body, or one entry of a
// batchEmbedContents body.
type geminiEmbedRequest struct {
	Model           string         `json:"model"`
	Content         *geminiContent `json:"content"`
	Dimensions      *int           `json:"outputDimensionality"`
	DimensionsSnake *int           `json:"output_dimensionality"`
}

func (g *geminiEmbedRequest) dims() int {
	switch {
	case g.Dimensions != nil:
		return *g.Dimensions
	case g.DimensionsSnake != nil:
		return *g.DimensionsSnake
	}
	return 0
}

// handleGeminiEmbed serves POST /{version}/models/{model}:batchEmbedContents
// ({"requests": [...]} -> {"embeddings": [{"values": [...]}]}) and
// :embedContent ({"content", "outputDimensionality"} -> {"embedding":
// {"values": [...]}}).
func (s *Server) handleGeminiEmbed(w http.ResponseWriter, r *http.Request, model string, batch bool) {
	d := geminiDialect{}
	s.countEmbedRequest(d.name())
	badRequest := func(msg string) { s.badRequest(w, d, msg) }
	var reqs []geminiEmbedRequest
	if batch {
		var body struct {
			Requests []geminiEmbedRequest `json:"requests"`
		}
		if err := readJSON(r, &body); err != nil {
			badRequest("Invalid JSON payload received: " + err.Error())
			return
		}
		reqs = body.Requests
	} else {
		var one geminiEmbedRequest
		if err := readJSON(r, &one); err != nil {
			badRequest("Invalid JSON payload received: " + err.Error())
			return
		}
		reqs = []geminiEmbedRequest{one}
	}
	switch {
	case len(reqs) == 0:
		badRequest("* BatchEmbedContentsRequest.requests: requests is not specified")
		return
	case len(reqs) > maxGeminiEmbedBatch:
		badRequest(fmt.Sprintf("* BatchEmbedContentsRequest.requests: at most %d requests can be in one batch (got %d)", maxGeminiEmbedBatch, len(reqs)))
		return
	}
	e := embedCall{texts: make([]string, len(reqs))}
	for i := range reqs {
		q := &reqs[i]
		if m := strings.TrimPrefix(q.Model, "models/"); batch && m != "" && m != model {
			badRequest(fmt.Sprintf("* BatchEmbedContentsRequest.requests[%d].model: %q differs from the batch's model %q", i, q.Model, model))
			return
		}
		e.texts[i] = q.Content.text()
		if strings.TrimSpace(e.texts[i]) == "" {
			badRequest(fmt.Sprintf("* BatchEmbedContentsRequest.requests[%d].content: must have a non-empty text part", i))
			return
		}
		if dims := q.dims(); dims < 0 || dims > maxEmbedDimensions || i > 0 && dims != reqs[0].dims() {
			badRequest(fmt.Sprintf("* BatchEmbedContentsRequest.requests[%d].output_dimensionality: %d is not supported", i, dims))
			return
		}
	}
	// Every request asks for the first one's dimensions.
	e.dims = embedDimensions(model, reqs[0].dims())
	res, ok := s.embedAnswer(w, r, d, &call{model: model, embed: true}, e)
	if !ok {
		return
	}
	values := make([]any, len(res.vecs))
	for i, v := range res.vecs {
		values[i] = map[string]any{"values": v}
	}
	if !batch {
		var one any = map[string]any{}
		if len(values) > 0 {
			one = values[0]
		}
		writeMaybeCut(w, map[string]any{"embedding": one}, res.malformed)
		return
	}
	writeMaybeCut(w, map[string]any{"embeddings": values}, res.malformed)
}

// openaiEmbedRequest is an embeddings body.
type openaiEmbedRequest struct {
	Input          json.RawMessage `json:"input"`
	Model          string          `json:"model"`
	Dimensions     int             `json:"dimensions"`
	EncodingFormat string          `json:"encoding_format"`
}

// handleOpenAIEmbed serves POST /v1/embeddings (and /embeddings): input a
// string or a list of strings, encoding_format float or base64.
func (s *Server) handleOpenAIEmbed(w http.ResponseWriter, r *http.Request) {
	d := openaiDialect{}
	s.countEmbedRequest(d.name())
	badRequest := func(msg string) { s.badRequest(w, d, msg) }
	var req openaiEmbedRequest
	if err := readJSON(r, &req); err != nil {
		badRequest("We could not parse the JSON body of your request: " + err.Error())
		return
	}
	var texts []string
	var one string
	if json.Unmarshal(req.Input, &one) == nil {
		texts = []string{one}
	} else if err := json.Unmarshal(req.Input, &texts); err != nil {
		badRequest("'input' must be a string or a list of strings (token arrays are not supported by fake-llm)")
		return
	}
	switch {
	case req.Model == "":
		badRequest("you must provide a model parameter")
		return
	case len(texts) == 0:
		badRequest("'input' must not be empty")
		return
	case len(texts) > maxOpenAIEmbedBatch:
		badRequest(fmt.Sprintf("'input' must have at most %d items (got %d)", maxOpenAIEmbedBatch, len(texts)))
		return
	case req.Dimensions < 0 || req.Dimensions > maxEmbedDimensions:
		badRequest(fmt.Sprintf("'dimensions' %d is not supported", req.Dimensions))
		return
	case req.EncodingFormat != "" && req.EncodingFormat != "float" && req.EncodingFormat != "base64":
		badRequest(fmt.Sprintf("'encoding_format' %q: want float or base64", req.EncodingFormat))
		return
	}
	for i, t := range texts {
		if strings.TrimSpace(t) == "" {
			badRequest(fmt.Sprintf("'input[%d]' must not be empty", i))
			return
		}
	}
	e := embedCall{texts: texts, dims: embedDimensions(req.Model, req.Dimensions)}
	res, ok := s.embedAnswer(w, r, d, &call{model: req.Model, embed: true}, e)
	if !ok {
		return
	}
	data := make([]any, len(res.vecs))
	for i, v := range res.vecs {
		var emb any = v
		if req.EncodingFormat == "base64" {
			b := make([]byte, 4*len(v))
			for k, x := range v {
				binary.LittleEndian.PutUint32(b[4*k:], math.Float32bits(x))
			}
			emb = base64.StdEncoding.EncodeToString(b)
		}
		data[i] = map[string]any{"object": "embedding", "index": i, "embedding": emb}
	}
	writeMaybeCut(w, map[string]any{
		"object": "list", "data": data, "model": req.Model,
		"usage": map[string]any{"prompt_tokens": res.in, "total_tokens": res.in},
	}, res.malformed)
}
